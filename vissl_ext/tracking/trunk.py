"""The tracker's trunk: a VISSL trunk built from a composed config, with weights from any
checkpoint layout vissl_ext.utils.checkpoint_layouts reads (VISSL, torchvision, MoCo, ...).

Only the blocks up to the feature used (``res4`` = layer3) must fit; a checkpoint that does not
fit raises TrunkMismatchError naming the first key that does not.
"""
import logging
import os
from typing import Dict, List, Sequence

import torch

from vissl_ext.utils.checkpoint_layouts import TrunkWeights, load_into, read_trunk

DEFAULT_CONFIG = "pretrain/moco_video_baseline"
# VISSL ResNe(X)t block order; a feature needs every block up to its own
_RESNET_BLOCKS = ["conv1", "bn1", "conv1_relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
_FEAT_TO_BLOCK = {"res1": "maxpool", "res2": "layer1", "res3": "layer2", "res4": "layer3", "res5": "layer4"}


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


def _needed_prefixes(feature: str) -> List[str]:
    last = _FEAT_TO_BLOCK.get(feature)
    if last is None:
        raise ValueError(f"feature {feature!r} is not one of {sorted(_FEAT_TO_BLOCK)}")
    return [f"_feature_blocks.{b}." for b in _RESNET_BLOCKS[: _RESNET_BLOCKS.index(last) + 1]]


def load_trunk_weights(trunk: torch.nn.Module, weights: TrunkWeights, feature: str = "res4") -> Dict[str, int]:
    """Copy the weights of every block up to ``feature``; TrunkMismatchError names the first key
    that does not fit."""
    return load_into(trunk, weights, vissl_names=True, only=_needed_prefixes(feature),
                     target=f"the trunk built from the config (blocks up to {feature}); pass the config the "
                            f"checkpoint was trained with (--config, --override config.MODEL.TRUNK...)")


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
        load_trunk_weights(trunk, read_trunk(checkpoint, trust_pickle=trust_pickle), feature)
    else:
        logging.warning("tracker trunk: random init (no checkpoint given): tracks will be poor")
    return trunk.eval()
