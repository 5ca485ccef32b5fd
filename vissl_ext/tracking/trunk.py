"""The tracker's trunk: a VISSL trunk built from a composed config, with weights from any VISSL
checkpoint or a plain trunk state dict (VISSL ``_feature_blocks.*`` or torchvision ResNet keys).

Only the blocks up to the feature used (``res4`` = layer3) must fit; a checkpoint that does not
fit raises TrunkMismatchError naming the missing, unexpected and wrongly-shaped keys.
"""
import logging
import os
from typing import Dict, List, Sequence

import torch

from vissl_ext.utils.safe_load import torch_load

DEFAULT_CONFIG = "pretrain/moco_video_baseline"
# VISSL ResNe(X)t block order; a feature needs every block up to its own
_RESNET_BLOCKS = ["conv1", "bn1", "conv1_relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
_FEAT_TO_BLOCK = {"res1": "maxpool", "res2": "layer1", "res3": "layer2", "res4": "layer3", "res5": "layer4"}
_TORCHVISION_TOP = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.", "fc.")


class TrunkMismatchError(ValueError):
    """The checkpoint's trunk does not fit the trunk built from the config."""


def compose_model_config(config: str = DEFAULT_CONFIG, overrides: Sequence[str] = ()):
    """cfg.MODEL of a composed VISSL config (our config search path and checks)."""
    from vissl.utils.hydra_config import compose_hydra_configuration, convert_to_attrdict

    from vissl_ext.config import validate_config

    name = config if config.startswith("config=") else f"config={config}"
    # dump_config=False: composing must not write train_config.yaml into a checkpoint folder
    cfg = convert_to_attrdict(compose_hydra_configuration([name, *overrides]), dump_config=False)[1]
    validate_config(cfg)
    return cfg.MODEL


def build_trunk(model_cfg) -> torch.nn.Module:
    from vissl.models.trunks import get_model_trunk

    return get_model_trunk(model_cfg.TRUNK.NAME)(model_cfg, model_cfg.TRUNK.NAME)


def _strip(key: str) -> str:
    for prefix in ("module.", "base_model.", "model.", "trunk.", "base_network."):
        while key.startswith(prefix):
            key = key[len(prefix):]
    return key


def trunk_state_from_checkpoint(obj) -> Dict[str, torch.Tensor]:
    """The trunk's state dict out of the checkpoint layouts in use, keys in VISSL's naming."""
    state = obj
    if isinstance(obj, dict) and "classy_state_dict" in obj:  # VISSL training checkpoint
        state = obj["classy_state_dict"]["base_model"]["model"]["trunk"]
    elif isinstance(obj, dict) and "model_state_dict" in obj:
        state = obj["model_state_dict"]
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        state = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("trunk"), dict):  # VISSL consolidated {trunk, heads}
        state = obj["trunk"]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise TrunkMismatchError("no trunk state dict found (expected a VISSL checkpoint or a dict of tensors)")
    # a whole-model state dict: keep the trunk part
    if any(k.startswith(("trunk.", "module.trunk.", "base_model.trunk.")) for k in state):
        state = {k: v for k, v in state.items() if "trunk." in k}
    out = {}
    for k, v in state.items():
        k = _strip(k)
        if k.startswith(("heads.", "head.")):
            continue
        if k.startswith(_TORCHVISION_TOP):  # torchvision ResNet naming
            if k.startswith("fc."):
                continue
            k = "_feature_blocks." + k
        out[k] = v
    return out


def _needed_prefixes(feature: str) -> List[str]:
    last = _FEAT_TO_BLOCK.get(feature)
    if last is None:
        raise ValueError(f"feature {feature!r} is not one of {sorted(_FEAT_TO_BLOCK)}")
    return [f"_feature_blocks.{b}." for b in _RESNET_BLOCKS[: _RESNET_BLOCKS.index(last) + 1]]


def load_trunk_weights(trunk: torch.nn.Module, state: Dict[str, torch.Tensor], feature: str = "res4",
                       source: str = "checkpoint"):
    """Copy the weights of every block up to ``feature``; raise TrunkMismatchError on misfit."""
    needed = tuple(_needed_prefixes(feature))
    model = trunk.state_dict()
    want = {k for k in model if k.startswith(needed)}
    have = {k for k in state if k.startswith(needed)}
    missing = sorted(want - have)
    unexpected = sorted(have - want)
    shapes = sorted(f"{k}: checkpoint {tuple(state[k].shape)} vs trunk {tuple(model[k].shape)}"
                    for k in want & have if state[k].shape != model[k].shape)
    if missing or unexpected or shapes:
        def show(xs):
            return f"{len(xs)} e.g. {xs[:6]}" if xs else "none"

        raise TrunkMismatchError(
            f"{source}: the trunk does not fit the model built from the config (blocks up to {feature}): "
            f"missing keys {show(missing)}; unexpected keys {show(unexpected)}; shape mismatches {show(shapes)}. "
            f"Pass the config the checkpoint was trained with (--config, --override config.MODEL.TRUNK...)")
    trunk.load_state_dict({k: state[k] for k in want}, strict=False)
    logging.info(f"{source}: loaded {len(want)} trunk tensors (blocks up to {feature})")


def load_tracker_trunk(checkpoint: str = None, config: str = DEFAULT_CONFIG, overrides: Sequence[str] = (),
                       feature: str = "res4", trust_pickle: bool = False) -> torch.nn.Module:
    """Build the trunk from a composed VISSL config; load ``checkpoint`` (None or 'random':
    random init from a fixed seed, for tests and smoke runs: every shard and process gets the same
    weights) safely (vissl_ext.utils.safe_load). Returned in eval mode."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        trunk = build_trunk(compose_model_config(config, overrides))
    if checkpoint and checkpoint != "random":
        if not os.path.isfile(checkpoint):
            raise FileNotFoundError(f"checkpoint {checkpoint} does not exist")
        obj = torch_load(checkpoint, trust_pickle=trust_pickle)
        try:
            state = trunk_state_from_checkpoint(obj)
        except TrunkMismatchError as e:
            raise TrunkMismatchError(f"{checkpoint}: {e}") from None
        load_trunk_weights(trunk, state, feature, source=checkpoint)
    else:
        logging.warning("tracker trunk: random init (no checkpoint given): tracks will be poor")
    return trunk.eval()
