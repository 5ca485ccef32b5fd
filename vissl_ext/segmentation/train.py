"""detectron2 training and evaluation of the ADE20K head on a frozen, converted VISSL trunk.

``Trainer`` is detectron2's DefaultTrainer with SemSegEvaluator (mIoU, pixel accuracy), the
DeepLab training augmentation (resize, then crop: see ``build_train_augmentation``) and a test
loader that does not read the ground truth (the evaluator reads it from the prepared PNGs).
"""
import copy
import logging
import os

import torch

import vissl_ext.segmentation  # noqa: F401  (d2 compat fixes before detectron2 imports)
from vissl_ext.segmentation.head import add_segmentation_config  # registers TwoLayerUpsampleHead
from detectron2.config import get_cfg
from detectron2.data import DatasetMapper, build_detection_test_loader, build_detection_train_loader
from detectron2.data import transforms as T
from detectron2.engine import DefaultTrainer
from detectron2.evaluation import SemSegEvaluator
from vissl_ext.utils.safe_load import load_pickle, torch_load
from vissl_ext.segmentation.d2_compat import apply_engine_fixes
from vissl_ext.segmentation.safe_checkpointer import install as install_safe_checkpointer

apply_engine_fixes()
install_safe_checkpointer()

logger = logging.getLogger(__name__)

_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# a checkout / editable install: <repo>/configs/detectron2; a wheel ships configs/ as vissl_ext/_configs (setup.py)
D2_CONFIGS = next((d for d in (os.path.join(os.path.dirname(_PKG), "configs", "detectron2"),
                               os.path.join(_PKG, "_configs", "detectron2")) if os.path.isdir(d)),
                  os.path.join(os.path.dirname(_PKG), "configs", "detectron2"))
DEFAULT_CONFIG = os.path.join(D2_CONFIGS, "ade20k_sem_seg_frozen_R50.yaml")


def setup_cfg(config_file: str = DEFAULT_CONFIG, opts=()):
    cfg = add_segmentation_config(get_cfg())
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    if not torch.cuda.is_available() and cfg.MODEL.DEVICE.startswith("cuda"):
        logger.warning("no GPU: MODEL.DEVICE cpu")
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    return cfg


def load_weights_file(path: str, trust_pickle: bool = False):
    """A weights file as detectron2 would read it, but safely (vissl_ext.utils.safe_load): called in the
    parent before any worker starts, so a crafted file fails with one line naming it."""
    return load_pickle(path, trust_pickle=trust_pickle) if path.endswith(".pkl") else torch_load(path, trust_pickle=trust_pickle)


def is_vissl_checkpoint(path: str, trust_pickle: bool = False) -> bool:
    """A VISSL/torchvision checkpoint to convert (not a detectron2 weights file)."""
    obj = load_weights_file(path, trust_pickle)
    if path.endswith(".pkl"):
        return False
    return not (isinstance(obj, dict) and "model" in obj and ("__author__" in obj or "iteration" in obj))


def prepare_weights(weights: str, output_dir: str, trust_pickle: bool = False) -> str:
    """detectron2 weights for ``weights``: VISSL checkpoints are converted into ``output_dir``."""
    from vissl_ext.segmentation.convert import convert_checkpoint

    if not weights:
        return ""
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"--weights {weights}: no such file")
    if not is_vissl_checkpoint(weights, trust_pickle):
        return weights
    out = os.path.join(output_dir, "trunk_d2.pkl")
    convert_checkpoint(weights, out, trust_pickle=trust_pickle)
    return out


def check_trunk_loaded(model, weights: str, trust_pickle: bool = False) -> int:
    """Every backbone tensor must equal the one in our converted ``weights`` (no silent random
    init); returns how many were checked. Files not written by vissl_ext are not checked."""
    if not weights or not weights.endswith(".pkl"):
        return 0
    data = load_pickle(weights, trust_pickle=trust_pickle)
    if data.get("__author__") != "vissl_ext":
        return 0
    backbone = model.module.backbone if hasattr(model, "module") else model.backbone
    state = backbone.state_dict()
    names = {k[len("backbone."):] if k.startswith("backbone.") else k: v for k, v in data["model"].items()}
    checked = 0
    for k, v in state.items():
        if k not in names:
            raise RuntimeError(f"{weights}: backbone tensor {k} is not in the converted trunk (random init?)")
        if not torch.equal(v.cpu(), torch.as_tensor(names[k])):
            raise RuntimeError(f"{weights}: backbone tensor {k} differs from the file after loading")
        checked += 1
    logger.info(f"trunk check: {checked} backbone tensors equal to {weights}")
    return checked


def build_train_augmentation(cfg):
    """ResizeShortestEdge(INPUT.MIN_SIZE_TRAIN, e.g. 256..1024) THEN RandomCrop(INPUT.CROP.SIZE,
    e.g. 512x512), then a horizontal flip: DeepLab's ADE20K recipe (its build_sem_seg_train_aug).
    detectron2 v0.6's DatasetMapper puts the crop first, which gives squares of 320..1024 px.
    A crop never exceeds the resized image: where the resized image is smaller than the crop on a
    side, the sample keeps that side, and the batch pads it (images with 0, labels with
    MODEL.SEM_SEG_HEAD.IGNORE_VALUE, so padding never counts in the loss)."""
    augs = [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TRAIN, cfg.INPUT.MAX_SIZE_TRAIN, cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING)]
    if cfg.INPUT.CROP.ENABLED:
        augs.append(T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
    augs.append(T.RandomFlip())
    return augs


def build_train_mapper(cfg):
    return DatasetMapper(cfg, is_train=True, augmentations=build_train_augmentation(cfg))


class _WithoutGroundTruth:
    """DatasetMapper for evaluation that skips reading the label PNG (SemSegEvaluator reads it)."""

    def __init__(self, mapper):
        self.mapper = mapper

    def __call__(self, dataset_dict):
        d = copy.copy(dataset_dict)
        d.pop("sem_seg_file_name", None)
        return self.mapper(d)


class Trainer(DefaultTrainer):
    @classmethod
    def build_train_loader(cls, cfg):
        return build_detection_train_loader(cfg, mapper=build_train_mapper(cfg))

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        return SemSegEvaluator(dataset_name, distributed=True, output_dir=output_folder)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_detection_test_loader(cfg, dataset_name, mapper=_WithoutGroundTruth(DatasetMapper(cfg, False)))
