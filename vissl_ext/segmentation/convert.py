"""VISSL ResNet trunk -> detectron2 ResNet weights (``stem``/``res2..res5``, BN -> FrozenBN ``norm``).

The key renaming is the host's own (``extra_scripts/convert_vissl_to_detectron2.py`` of the vissl
wheel); this module adds what a reusable tool needs: every checkpoint layout
vissl_ext.utils.checkpoint_layouts reads (VISSL, torchvision, timm, MoCo, DINO, ...), a check that every key
became a detectron2 ResNet name (a non-ResNet trunk or a head key is an error, not a silent drop),
and an atomic write that detectron2's DetectionCheckpointer reads (``.pkl``: model-zoo format of
numpy arrays; ``.pth``: tensors).

The written file carries ``matching_heuristics: True`` and names without a ``backbone.`` prefix,
as detectron2's own ``convert-torchvision-to-d2.py`` does, so it loads into any meta-architecture
(``backbone.*`` or ``backbone.bottom_up.*``). With ``prefix="backbone."`` names are exact for
SemanticSegmentor / GeneralizedRCNN without FPN and heuristics are switched off.

VISSL's trunk is torchvision's ResNet: the stride sits in the 3x3 conv, so detectron2 configs
must set ``MODEL.RESNETS.STRIDE_IN_1X1: False`` and normalise RGB input as VISSL did
(see configs/detectron2/).
"""
import logging
import os
import pickle
import re
from typing import Dict

import numpy as np
import torch

from vissl_ext.utils.checkpoint_layouts import TrunkMismatchError, read_trunk
from vissl_ext.utils.atomic_io import atomic_open

logger = logging.getLogger(__name__)

_D2_RESNET_KEY = re.compile(
    r"^(stem\.conv1|res[2-5]\.\d+\.(conv[1-3]|shortcut))(\.norm)?\.(weight|bias|running_mean|running_var)$"
)


class ConversionError(ValueError):
    """The input is not a VISSL/torchvision ResNet trunk that detectron2's ResNet can hold."""


def vissl_to_d2_names(keys):
    """detectron2 names for VISSL ``_feature_blocks.*`` keys (the host's mapping)."""
    import contextlib
    import io

    # The host script calls logging.basicConfig at import time; keep that from configuring the
    # root logger of the calling program.
    root = logging.getLogger()
    handlers = list(root.handlers)
    with contextlib.redirect_stdout(io.StringIO()):
        from extra_scripts.convert_vissl_to_detectron2 import convert_to_detectron2_names
    root.handlers[:] = handlers
    return convert_to_detectron2_names(list(keys))


def convert_trunk_state(trunk_state: Dict[str, torch.Tensor], prefix: str = "") -> Dict[str, torch.Tensor]:
    """Rename a VISSL-named trunk state dict to detectron2 ResNet names (``num_batches_tracked`` dropped)."""
    keys = [k for k in trunk_state if not k.endswith("num_batches_tracked")]
    if not keys:
        raise ConversionError("the trunk state dict is empty")
    not_resnet = [k for k in keys if not k.startswith("_feature_blocks.")]
    if not_resnet:
        raise ConversionError(f"{len(not_resnet)} keys are not VISSL ResNet trunk keys, e.g. {not_resnet[:5]}")
    names = vissl_to_d2_names(keys)
    bad = [(k, n) for k, n in zip(keys, names) if not _D2_RESNET_KEY.match(n)]
    if bad:
        raise ConversionError(
            f"{len(bad)} trunk keys have no detectron2 ResNet counterpart, e.g. {bad[:5]} "
            "(only VISSL ResNe(X)t trunks convert)")
    return {prefix + n: trunk_state[k].detach().cpu() for k, n in zip(keys, names)}


def load_vissl_trunk_state(path: str, trust_pickle: bool = False, encoder: str = None) -> Dict[str, torch.Tensor]:
    """The trunk state dict (VISSL names) of any checkpoint layout vissl_ext.utils.checkpoint_layouts
    reads (VISSL checkpoint or consolidated dict, torchvision, MoCo, ...), loaded safely."""
    try:
        weights = read_trunk(path, encoder=encoder, trust_pickle=trust_pickle)
    except TrunkMismatchError as e:
        raise ConversionError(str(e)) from None
    logger.info(f"{path}: layout {weights.layout}, {weights.encoder} encoder: {len(weights.state)} trunk tensors")
    return weights.vissl_state()


def save_d2_weights(state: Dict[str, torch.Tensor], output: str, matching_heuristics: bool = True,
                    source: str = "") -> None:
    """Write ``state`` atomically in a format detectron2's DetectionCheckpointer loads."""
    payload = {"__author__": "vissl_ext", "matching_heuristics": matching_heuristics, "source": source}
    if output.endswith(".pkl"):
        payload["model"] = {k: v.numpy() for k, v in state.items()}
        with atomic_open(output, "wb") as f:
            pickle.dump(payload, f)
    elif output.endswith((".pth", ".pt")):
        payload["model"] = state
        with atomic_open(output, "wb") as f:
            torch.save(payload, f)
    else:
        raise ValueError(f"{output}: use a .pkl (detectron2 model-zoo format) or .pth output name")


def convert_checkpoint(input_path: str, output: str, prefix: str = "", trust_pickle: bool = False,
                       encoder: str = None) -> Dict[str, np.ndarray]:
    """Convert ``input_path`` (see :func:`load_vissl_trunk_state`) to ``output``; returns the state."""
    state = convert_trunk_state(load_vissl_trunk_state(input_path, trust_pickle, encoder), prefix=prefix)
    save_d2_weights(state, output, matching_heuristics=not prefix, source=os.path.abspath(input_path))
    logger.info(f"converted {len(state)} trunk tensors: {input_path} -> {output}")
    return state
