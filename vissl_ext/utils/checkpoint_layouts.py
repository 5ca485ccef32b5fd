"""Where a ResNet trunk sits in a checkpoint file, and its keys in torchvision's naming.

The one place that knows checkpoint layouts: the tracker, the detectron2 converter, RIS, the
study runner, the kNN tool and the export read trunks through :func:`read_trunk`. No layout
needs a hand-written key rule: the reader walks the file's nested dicts, finds every ResNet
stem (a ``conv1.weight`` with 3 input channels, or ClassyVision's
``initial_block._module.0.weight``), and takes the keys under that stem's prefix as one trunk.
The layouts below only name what was found and pick the default encoder:

====================================  ==============================================================
layout                                where the trunk is, and its key rule
====================================  ==============================================================
torchvision / timm state dict         the file itself: ``conv1.`` ``bn1.`` ``layer1-4.`` (``fc.`` dropped)
timm training checkpoint              ``state_dict`` (momentum: ``state_dict_ema``), same names
our safetensors export                the file itself, torchvision names
MoCo v1/v2 official                   ``state_dict``: ``module.encoder_q.`` (momentum: ``module.encoder_k.``)
VISSL checkpoint / model zoo          ``classy_state_dict.base_model.model.trunk``: ``_feature_blocks.``
                                      (momentum: ``classy_state_dict.loss`` and its copy ``loss``:
                                      ``moco_encoder.trunk._feature_blocks.``)
VISSL consolidated trunk              ``trunk``: ``_feature_blocks.``
ClassyVision / PIRL                   ``classy_state_dict.base_model.model.trunk``: ClassyVision ResNeXt names
                                      (``initial_block._module.0/1`` -> ``conv1``/``bn1``,
                                      ``blocks.S.blockS-I.convolutional_block.0,1,3,4,6`` + ``bn`` ->
                                      ``layer{S+1}.I.conv1,bn1,conv2,bn2,conv3`` + ``bn3``)
solo-learn (Lightning)                ``state_dict``: ``backbone.`` (momentum: ``momentum_backbone.``)
Lightning module                      ``state_dict``: ``model.`` (or ``model.backbone.``, ``model.encoder.`` ...)
DINO                                  ``student``: ``module.backbone.``; momentum ``teacher``: ``backbone.``
====================================  ==============================================================

A prefix whose path names ``encoder_k``, ``momentum``, ``teacher``, ``ema``, ``target`` or
``moco_encoder`` is a momentum (key/teacher/EMA) encoder; any other is the online one.
"""
from __future__ import annotations  # torch in annotations: the CLIs' --help (add_encoder_flag) loads no torch

import os
import re
import sys
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Tuple


TRUNK_ROOTS = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")
CLASSIFIER = "fc."
VISSL_PREFIX = "_feature_blocks."
ENCODERS = ("online", "momentum")
# words of a key path that mark a momentum (key / teacher / EMA) encoder
_MOMENTUM_WORDS = {"momentum", "teacher", "ema", "target", "moco"}
_TV_STEM = "conv1.weight"
_CLASSY_STEM = "initial_block._module.0.weight"
# torchvision ResNets, tried in this order when the architecture is inferred from the weights
RESNET_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "wide_resnet50_2",
                "wide_resnet101_2", "resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d")


class TrunkMismatchError(ValueError):
    """No ResNet trunk in the file, or one that does not fit the model it is loaded into."""


@dataclass
class TrunkWeights:
    """One trunk found in a file: ``state`` in torchvision names, classifier removed."""
    state: Dict[str, torch.Tensor]
    layout: str          # what was found and where, e.g. "MoCo v1/v2 official (state_dict: module.encoder_q.)"
    encoder: str         # "online" or "momentum"
    source: str          # the file
    file_tensors: int    # every tensor in the file outside optimizer states
    meta: Dict[str, str] = field(default_factory=dict)  # iteration, config, ... where the file says

    def vissl_state(self) -> Dict[str, torch.Tensor]:
        """The state in VISSL trunk names (``_feature_blocks.`` + torchvision name)."""
        return {VISSL_PREFIX + k: v for k, v in self.state.items()}


@dataclass
class _Candidate:
    path: Tuple[str, ...]   # nested dict keys down to the tensor dict
    prefix: str             # key prefix before the stem
    classy: bool            # ClassyVision ResNeXt naming
    tensors: Dict[str, torch.Tensor]

    @property
    def address(self) -> str:
        where = ".".join(self.path) if self.path else "file"
        return f"{where}: {self.prefix or '(no prefix)'}"

    @property
    def encoder(self) -> str:
        where = ".".join(self.path) + "." + self.prefix
        words = set(re.split(r"[._]", where.lower()))
        return "momentum" if words & _MOMENTUM_WORDS or "encoder_k." in where else "online"


def _tensor_dicts(obj, path=(), depth=0) -> Iterator[Tuple[Tuple[str, ...], dict]]:
    """Every nested dict whose values are all tensors (or numpy arrays), with its key path."""
    import numpy as np
    import torch

    if not isinstance(obj, dict) or depth > 6 or not obj:
        return
    if all(isinstance(k, str) for k in obj) and all(torch.is_tensor(v) or isinstance(v, np.ndarray) for v in obj.values()):
        yield path, obj
        return
    for k, v in obj.items():
        if isinstance(k, str) and isinstance(v, dict) and not k.startswith("optim"):
            yield from _tensor_dicts(v, path + (k,), depth + 1)


def _same(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> bool:
    import torch

    return a.keys() == b.keys() and all(a[k] is b[k] or torch.equal(a[k], b[k]) for k in a)


def _candidates(obj) -> List[_Candidate]:
    import torch

    found = []
    for path, d in _tensor_dicts(obj):
        for key, v in d.items():
            for stem, classy in ((_TV_STEM, False), (_CLASSY_STEM, True)):
                if key.endswith(stem) and getattr(v, "ndim", 0) == 4 and v.shape[1] == 3:
                    prefix = key[: -len(stem)]
                    if prefix and not prefix.endswith("."):
                        continue
                    tensors = {k[len(prefix):]: torch.as_tensor(t) for k, t in d.items() if k.startswith(prefix)}
                    # VISSL saves the loss state (the momentum encoder) twice: once is one trunk
                    if not any(c.classy == classy and _same(c.tensors, tensors) for c in found):
                        found.append(_Candidate(path, prefix, classy, tensors))
    return found


def _classy_to_torchvision(state: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """ClassyVision ResNeXt names -> torchvision names (same modules, same order)."""
    old = re.compile(r"^blocks\.(\d+)\.(\d+)\._module\.")  # ClassyVision's pre-versioned names
    state = {old.sub(lambda m: f"blocks.{m[1]}.block{m[1]}-{m[2]}.", k): v for k, v in state.items()}
    bottleneck = any(".convolutional_block.6." in k for k in state)
    conv = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2", "6": "conv3"}
    final_bn = "bn3" if bottleneck else "bn2"
    out = {}
    for k, v in state.items():
        m = re.match(r"^initial_block\._module\.([01])\.(.+)$", k)
        if m:
            out[f"{'conv1' if m[1] == '0' else 'bn1'}.{m[2]}"] = v
            continue
        m = re.match(r"^blocks\.(\d+)\.block\d+-(\d+)\.(.+)$", k)
        if not m:
            out[k] = v  # not a trunk key (a head): reported as ignored
            continue
        layer, rest = f"layer{int(m[1]) + 1}.{m[2]}", m[3]
        c = re.match(r"^convolutional_block\.(\d+)\.(.+)$", rest)
        if c and c[1] in conv:
            out[f"{layer}.{conv[c[1]]}.{c[2]}"] = v
        elif rest.startswith("bn."):
            out[f"{layer}.{final_bn}.{rest[3:]}"] = v
        else:  # downsample.0/1 keep their names; anything else (SE layers) will not fit
            out[f"{layer}.{rest}"] = v
    return out


def _layout_name(c: _Candidate, obj) -> str:
    """A reader's name for where the trunk was found (the rule itself is generic)."""
    path, p = ".".join(c.path), c.prefix
    if c.classy:
        return "ClassyVision / PIRL"
    if path == "classy_state_dict.base_model.model.trunk":
        return "VISSL checkpoint"
    if path in ("classy_state_dict.loss", "loss"):
        return "VISSL checkpoint (momentum encoder)"
    if path == "trunk":
        return "VISSL consolidated trunk"
    if "encoder_q." in p or "encoder_k." in p:
        return "MoCo v1/v2 official"
    if path in ("student", "teacher"):
        return "DINO"
    if isinstance(obj, dict) and ("pytorch-lightning_version" in obj or "global_step" in obj):
        return "solo-learn (Lightning)" if p in ("backbone.", "momentum_backbone.") else "Lightning module"
    if path in ("state_dict", "state_dict_ema") and isinstance(obj, dict) and "arch" in obj:
        return "timm training checkpoint"
    if not path and p in ("", "module."):
        return "torchvision / timm state dict"
    if p.endswith(VISSL_PREFIX):
        return "VISSL trunk state dict"
    return "state dict"


def load_checkpoint_file(path: str, trust_pickle: bool = False, flag_hint: bool = True):
    """The file's content, safely: ``.safetensors`` through safetensors (tensors only, with its
    metadata under ``__metadata__``), anything else through vissl_ext.utils.safe_load."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    if path.endswith(".safetensors"):
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            return {"__metadata__": dict(f.metadata() or {}), **{k: f.get_tensor(k) for k in f.keys()}}
    from vissl_ext.utils.safe_load import torch_load

    return torch_load(path, trust_pickle=trust_pickle, flag_hint=flag_hint)


def _meta(obj) -> Dict[str, str]:
    if not isinstance(obj, dict):
        return {}
    out = dict(obj.get("__metadata__", {})) if isinstance(obj.get("__metadata__"), dict) else {}
    for k in ("iteration", "phase_idx", "epoch", "global_step", "arch"):
        v = obj.get(k)
        if isinstance(v, (int, str)) and not isinstance(v, bool):
            out.setdefault(k, str(v))
    return out


def trunk_from_object(obj, source: str = "checkpoint", encoder: Optional[str] = None,
                      under: str = "") -> TrunkWeights:
    """The trunk of a loaded checkpoint object (see the module's table). ``encoder``: "online"
    (default) or "momentum"; ``under``: only look below this dotted key (e.g. ``state_dict``)."""
    if encoder not in (None, *ENCODERS):
        raise ValueError(f"encoder must be one of {ENCODERS}, got {encoder!r}")
    if isinstance(obj, dict) and obj.get("__metadata__") is not None:
        obj = dict(obj)
        meta_holder = {"__metadata__": obj.pop("__metadata__")}
    else:
        meta_holder = obj
    cands = _candidates(obj)
    if under:
        cands = [c for c in cands if ".".join(c.path).startswith(under)]
    if not cands:
        where = f" under {under!r}" if under else ""
        raise TrunkMismatchError(f"{source}: no ResNet trunk found{where} (no conv1.weight with 3 input channels in "
                                 f"any state dict of the file; layouts known: see vissl_ext/utils/checkpoint_layouts.py)")
    want = encoder or "online"
    pick = [c for c in cands if c.encoder == want]
    if not pick:
        have = ", ".join(f"{c.encoder} at {c.address}" for c in cands)
        raise TrunkMismatchError(f"{source}: no {want} encoder in the file (found: {have}); "
                                 f"choose the encoder with --encoder")
    if len(pick) > 1:
        raise TrunkMismatchError(f"{source}: {len(pick)} {want} trunks in the file ({'; '.join(c.address for c in pick)}); "
                                 f"name the one to load with --state-dict-key")
    c = pick[0]
    state = _classy_to_torchvision(c.tensors) if c.classy else c.tensors
    # the trunk's own keys; the classifier and heads stored under the same prefix are not trunk
    state = {k: v for k, v in state.items() if k.startswith(TRUNK_ROOTS)}
    n = sum(len(d) for _, d in _tensor_dicts(obj))
    return TrunkWeights(state=state, layout=f"{_layout_name(c, obj)} ({c.address})", encoder=c.encoder,
                        source=source, file_tensors=n, meta=_meta(meta_holder))


def read_trunk(path: str, encoder: Optional[str] = None, trust_pickle: bool = False, under: str = "",
               flag_hint: bool = True) -> TrunkWeights:
    """:func:`trunk_from_object` of the file at ``path``, loaded safely (``flag_hint``: a refusal
    suggests --trust-pickle, for tools that offer it)."""
    obj = load_checkpoint_file(path, trust_pickle=trust_pickle, flag_hint=flag_hint)
    return trunk_from_object(obj, source=path, encoder=encoder, under=under)


def _skip(key: str, skip: Sequence[str]) -> bool:
    return key.endswith("num_batches_tracked") or key.startswith(tuple(skip))


def check_fit(weights: TrunkWeights, model_state: Dict[str, torch.Tensor], vissl_names: bool = False,
              only: Sequence[str] = (), target: str = "the model") -> Dict[str, torch.Tensor]:
    """The tensors of ``weights`` renamed for ``model_state`` (torchvision names, or VISSL's with
    ``vissl_names``), restricted to keys starting with one of ``only`` (all when empty). Raises
    TrunkMismatchError naming the first mismatching key (in the model's order) when a model key
    other than the classifier and BN counters is missing, the file has a trunk key the model
    lacks, or a shape differs."""
    state = weights.vissl_state() if vissl_names else weights.state
    if only:
        state = {k: v for k, v in state.items() if k.startswith(tuple(only))}
        model_state = {k: v for k, v in model_state.items() if k.startswith(tuple(only))}
    classifier = () if vissl_names else (CLASSIFIER,)  # VISSL trunks have no classifier
    problems = []
    for k, v in model_state.items():
        if k not in state:
            if not _skip(k, classifier):
                problems.append(f"{k} missing from the file")
        elif tuple(state[k].shape) != tuple(v.shape):
            problems.append(f"{k} has shape {tuple(state[k].shape)} in the file, {tuple(v.shape)} in {target}")
    extra = [k for k in state if k not in model_state]
    problems += [f"{k} is in the file but not in {target}" for k in extra]
    if problems:
        raise TrunkMismatchError(
            f"{weights.source}: the trunk ({weights.layout}) does not fit {target}: first mismatch: {problems[0]} "
            f"({len(problems)} mismatching keys in all)")
    return {k: state[k] for k in model_state if k in state}


def load_into(model: torch.nn.Module, weights: TrunkWeights, vissl_names: bool = False, only: Sequence[str] = (),
              target: str = "the model") -> Dict[str, int]:
    """Load ``weights`` into ``model`` after :func:`check_fit`; log the one line every load
    prints (layout, encoder, counts loaded / missing / ignored) and return the counts."""
    model_state = model.state_dict()
    state = check_fit(weights, model_state, vissl_names, only, target)
    model.load_state_dict(state, strict=False)
    counts = {"loaded": len(state), "missing": len(model_state) - len(state),
              "ignored": weights.file_tensors - len(state)}
    # printed, not logged: the line must reach the user whatever the caller's logging set-up
    print(f"{weights.source}: layout {weights.layout}, {weights.encoder} encoder -> {target}: "
          f"loaded {counts['loaded']}, missing {counts['missing']} (left at init), "
          f"ignored {counts['ignored']} (heads, other encoders, buffers)", file=sys.stderr, flush=True)
    return counts


def infer_resnet_arch(weights: TrunkWeights) -> str:
    """The torchvision ResNet whose trunk has exactly these keys and shapes."""
    import torch
    import torchvision.models as tvm

    have = {k: tuple(v.shape) for k, v in weights.state.items() if not k.endswith("num_batches_tracked")}
    for arch in RESNET_ARCHS:
        with torch.device("meta"):
            m = tvm.get_model(arch, weights=None)
        want = {k: tuple(v.shape) for k, v in m.state_dict().items()
                if not k.endswith("num_batches_tracked") and not k.startswith(CLASSIFIER)}
        if want == have:
            return arch
    raise TrunkMismatchError(f"{weights.source}: the trunk ({weights.layout}) matches none of the torchvision ResNets "
                             f"{', '.join(RESNET_ARCHS)}; name the architecture")


def add_encoder_flag(parser) -> None:
    """``--encoder online|momentum`` on a tool's argparse parser."""
    parser.add_argument("--encoder", choices=ENCODERS, default="online",
                        help="which encoder of a checkpoint that holds two: online (default; MoCo encoder_q, "
                             "DINO student, solo-learn backbone, VISSL's trunk) or momentum (MoCo encoder_k, DINO "
                             "teacher, solo-learn momentum_backbone, timm state_dict_ema, VISSL's momentum encoder "
                             "kept in the loss state)")
