"""Training augmentation as documented (DeepLab's ADE20K recipe): resize the short side to one of
INPUT.MIN_SIZE_TRAIN, THEN crop 512x512 (then flip), on real ADE20K samples. And the package
import alone registers the head and exports the config function."""
import importlib.util
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from PIL import Image

from vissl_ext_testing import REPO, shared_path

if importlib.util.find_spec("detectron2") is None:  # `make test` installs it: a missing one fails, never skips
    raise ImportError("detectron2 is not installed: run `bash scripts/install_detectron2.sh`")


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    from vissl_ext.segmentation import ade20k

    root = shared_path("ade20k_sceneparsing", "ADEChallengeData2016")
    out = tmp_path_factory.mktemp("ade")
    return ade20k.prepare(os.path.dirname(root), str(out), progress=False)["validation"]["records"]


def resized(path, short, mode):
    """The whole image (or label map) resized so its short side is ``short`` (detectron2's rounding)."""
    img = Image.open(path)
    w, h = img.size
    s = short / min(w, h)
    nw, nh = (short, int(h * s + 0.5)) if w < h else (int(w * s + 0.5), short)
    return np.asarray(img.convert("RGB") if mode == "image" else img, np.float32).shape, np.asarray(
        (img.convert("RGB") if mode == "image" else img).resize((nw, nh), Image.BILINEAR if mode == "image" else Image.NEAREST),
        np.float32)


def window_of(big, small):
    """(y, x, flipped) of ``small`` inside ``big`` (or its mirror) where they are equal; None if nowhere."""
    for flipped, ref in ((False, big), (True, big[:, ::-1].copy())):
        r = cv2.matchTemplate(ref, small, cv2.TM_SQDIFF)
        y, x = np.unravel_index(int(r.argmin()), r.shape)
        if r[y, x] <= 0.5 * small.size:  # equal up to rounding (a wrong window: thousands per pixel)
            return y, x, flipped
    return None


@pytest.mark.parametrize("short", [256, 512, 1024])
def test_resize_then_crop_on_real_samples(records, short):
    from vissl_ext.segmentation.train import DEFAULT_CONFIG, build_train_mapper, setup_cfg

    cfg = setup_cfg(DEFAULT_CONFIG, ["INPUT.MIN_SIZE_TRAIN", f"({short},)", "MODEL.DEVICE", "cpu"])
    assert tuple(cfg.INPUT.CROP.SIZE) == (512, 512)
    mapper = build_train_mapper(cfg)
    for rec in records:
        out = mapper(dict(rec))
        img = out["image"].numpy().transpose(1, 2, 0).astype(np.float32)
        if cfg.INPUT.FORMAT == "BGR":
            img = img[:, :, ::-1]
        label = out["sem_seg"].numpy().astype(np.float32)
        _, full = resized(rec["file_name"], short, "image")
        # the crop is taken from the resized image: 512 on each side, less where the resized image is smaller
        assert img.shape[:2] == (min(full.shape[0], 512), min(full.shape[1], 512)), (rec["image_id"], short)
        assert label.shape == img.shape[:2]
        # and its pixels are a window of the resized image (so not a crop resized afterwards)
        where = window_of(full, np.ascontiguousarray(img))
        assert where is not None, (rec["image_id"], short)
        y, x, flipped = where
        _, lab_full = resized(rec["sem_seg_file_name"], short, "label")
        lab_ref = lab_full[:, ::-1] if flipped else lab_full
        np.testing.assert_array_equal(label, lab_ref[y: y + label.shape[0], x: x + label.shape[1]])


def test_default_config_samples_every_scale_from_256_to_1024(records):
    from vissl_ext.segmentation.train import DEFAULT_CONFIG, build_train_augmentation, setup_cfg

    cfg = setup_cfg(DEFAULT_CONFIG, ["MODEL.DEVICE", "cpu"])
    assert min(cfg.INPUT.MIN_SIZE_TRAIN) == 256 and max(cfg.INPUT.MIN_SIZE_TRAIN) == 1024
    names = [type(a).__name__ for a in build_train_augmentation(cfg)]
    assert names == ["ResizeShortestEdge", "RandomCrop", "RandomFlip"]


def test_package_import_alone_registers_the_head_and_exports_the_config_function():
    code = ("import vissl_ext.segmentation as s\n"
            "from detectron2.config import get_cfg\n"
            "from detectron2.modeling import SEM_SEG_HEADS_REGISTRY\n"
            "assert SEM_SEG_HEADS_REGISTRY.get('TwoLayerUpsampleHead') is s.TwoLayerUpsampleHead\n"
            "print(s.add_segmentation_config(get_cfg()).MODEL.SEM_SEG_HEAD.LOSS_STRIDE)\n")
    env = dict(os.environ, PYTHONPATH=REPO)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.strip().splitlines()[-1] == "4"
