"""A trained trunk as a file other libraries load: a torchvision / timm state dict (``.pth``) or
``.safetensors`` (tensors only, with metadata), checked before it is written.

The trunk comes from any layout vissl_ext.utils.checkpoint_layouts reads; its keys are
torchvision's, which timm's ResNets share. Before writing, the weights are loaded with
``strict=True`` into the target library's model (its classifier replaced: the file has none) and
its pooled features are compared with the VISSL trunk's on a fixed batch.
"""
import hashlib
import json
import os
from typing import Dict, Optional

import torch

from vissl_ext.utils.atomic_io import atomic_open
from vissl_ext.utils.checkpoint_layouts import TrunkWeights, infer_resnet_arch, load_into, read_trunk
from vissl_ext.utils.checkpoints import RUN_INFO

FORMATS = ("torchvision", "timm", "safetensors")
EXTENSIONS = {"torchvision": (".pth", ".pt"), "timm": (".pth", ".pt"), "safetensors": (".safetensors",)}
# VISSL trunk depths (vissl.models.trunks.resnext SUPPORTED_DEPTHS) of plain ResNets: the
# feature check compares with the VISSL trunk itself for these
_VISSL_DEPTHS = {"resnet50": 50, "resnet101": 101, "resnet152": 152}
TOLERANCE = 1e-5


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def config_name_of(checkpoint: str) -> str:
    """The config the checkpoint was trained with, as the launcher recorded it ("" if unknown)."""
    path = os.path.join(os.path.dirname(os.path.abspath(checkpoint)), RUN_INFO)
    try:
        with open(path) as f:
            return str(json.load(f).get("config", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def target_model(fmt: str, arch: str) -> torch.nn.Module:
    """The library's model the file is for, random init, classifier removed (pooled features out)."""
    if fmt == "timm":
        import timm

        return timm.create_model(arch, pretrained=False, num_classes=0).eval()
    import torchvision

    model = torchvision.models.get_model(arch, weights=None)
    model.fc = torch.nn.Identity()
    return model.eval()


def vissl_trunk(arch: str, weights: TrunkWeights) -> Optional[torch.nn.Module]:
    """VISSL's own ResNet trunk holding ``weights`` (None for architectures VISSL's ResNeXt trunk
    does not build: then the torchvision model is the reference)."""
    depth = _VISSL_DEPTHS.get(arch)
    if depth is None:
        return None
    from vissl_ext.tracking.trunk import build_trunk, compose_model_config

    trunk = build_trunk(compose_model_config("pretrain/moco_video_baseline", [f"config.MODEL.TRUNK.RESNETS.DEPTH={depth}"]))
    load_into(trunk, weights, vissl_names=True, target=f"VISSL's ResNet-{depth} trunk")
    return trunk.eval()


@torch.no_grad()
def pooled(model: torch.nn.Module, x: torch.Tensor, vissl: bool = False) -> torch.Tensor:
    """Global-average-pooled last-block features [N, C] (a VISSL trunk: its ``res5avg``)."""
    return (model(x, out_feat_keys=["res5avg"])[0] if vissl else model(x)).flatten(1)


def fixed_batch(n: int = 2, size: int = 64) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 3, size, size, generator=g)


def check_features(fmt: str, arch: str, state: Dict[str, torch.Tensor], weights: TrunkWeights) -> float:
    """Load ``state`` strictly into the target library's model; max abs difference of its pooled
    features from the VISSL trunk's (or torchvision's) on :func:`fixed_batch`."""
    model = target_model(fmt, arch)
    model.load_state_dict(state, strict=True)
    ref = vissl_trunk(arch, weights)
    x = fixed_batch()
    want = pooled(ref, x, vissl=True) if ref is not None else pooled(_torchvision_reference(arch, weights), x)
    return float((pooled(model, x) - want).abs().max())


def _torchvision_reference(arch, weights):
    import torchvision

    m = torchvision.models.get_model(arch, weights=None)
    load_into(m, weights, target=arch)
    m.fc = torch.nn.Identity()
    return m.eval()


def export_trunk(checkpoint: str, fmt: str, out: str, encoder: str = "online", config_name: str = "",
                 trust_pickle: bool = False, check: bool = True) -> dict:
    """Write the trunk of ``checkpoint`` to ``out`` in ``fmt``; returns a summary."""
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
    if not out.endswith(EXTENSIONS[fmt]):
        raise ValueError(f"--out {out}: a {fmt} export is a {' or '.join(EXTENSIONS[fmt])} file")
    if os.path.isdir(out):
        raise ValueError(f"--out {out} is a folder; name the file to write")
    if os.path.exists(out) and os.path.samefile(out, checkpoint):
        raise ValueError(f"--out {out} is the checkpoint itself; name another file")
    weights = read_trunk(checkpoint, encoder=encoder, trust_pickle=trust_pickle)
    arch = infer_resnet_arch(weights)
    state = {k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype).contiguous()
             for k, v in weights.state.items()}
    diff = check_features(fmt, arch, state, weights) if check else None
    if diff is not None and not diff <= TOLERANCE:
        raise RuntimeError(f"{checkpoint}: the exported {arch}'s pooled features differ from the trunk's by {diff:.3g} "
                           f"(> {TOLERANCE}); nothing written")
    meta = {"format": "torchvision", "arch": arch, "encoder": weights.encoder, "layout": weights.layout,
            "source_checkpoint": os.path.basename(checkpoint), "source_sha256": sha256_of(checkpoint),
            "config": config_name or config_name_of(checkpoint) or "unknown",
            "iteration": weights.meta.get("iteration", weights.meta.get("global_step", weights.meta.get("epoch", ""))),
            "exported_by": "vissl_ext"}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with atomic_open(out, "wb") as f:
        if fmt == "safetensors":
            from safetensors.torch import save

            f.write(save(state, metadata=meta))
        else:
            torch.save(state, f)
    return {"ok": True, "out": out, "format": fmt, "arch": arch, "tensors": len(state),
            "max_abs_diff": diff, "metadata": meta}
