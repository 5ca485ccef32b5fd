"""Hostile inputs to the AUGMENT_BACKEND rewriter (vissl_ext/data/transforms/augment_backend.py): user lists
with PIL-only transforms between the crop and the MoCo v2 tail, typos in the backend name."""
import numpy as np
import pytest
import torch
from classy_vision.dataset.transforms import build_transform
from PIL import Image

import vissl_ext  # noqa: F401  (registers the transforms)
from vissl_ext.config import ConfigError
from vissl_ext.data.transforms.augment_backend import apply_augment_backend, rewrite_transforms

TAIL = [{"name": "ImgPilColorDistortion", "strength": 0.5}, {"name": "ToTensor"}]


@pytest.mark.parametrize("backend", ["fast", "device"])
@pytest.mark.parametrize("pil_only", [{"name": "RandomHorizontalFlip", "p": 1.0},
                                      {"name": "ImgPilRandomSolarize", "prob": 1.0},
                                      {"name": "ColorJitter", "brightness": 0.4}])
def test_crop_before_a_pil_only_transform_stays_a_pil_crop(backend, pil_only):
    """The fast crop returns a uint8 array: before a PIL-only transform the rewritten list used to
    crash in the data-loader worker (TypeError 'img should be PIL Image')."""
    ts = [{"name": "RandomResizedCrop", "size": 32}, pil_only] + TAIL
    new, _ = rewrite_transforms(ts, backend, "T")
    assert [t["name"] for t in new][:2] == ["RandomResizedCrop", pil_only["name"]]  # the user's transform kept
    x = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 50, 3), np.uint8))
    torch.manual_seed(0)
    for t in new:
        x = build_transform(dict(t))(x)
    assert tuple(x.shape) == (3, 32, 32) and x.dtype == (torch.uint8 if backend == "device" else torch.float32)


def test_crop_followed_by_array_safe_transforms_still_goes_fast():
    new, _ = rewrite_transforms([{"name": "RandomResizedCrop", "size": 32}] + TAIL, "fast", "T")
    assert [t["name"] for t in new] == ["FastRandomResizedCrop", "FastMocoV2Aug"]


@pytest.mark.parametrize("value,hint", [("fsat", "fast"), ("FAST", "fast"), ("Device", "device"), ("hots", "host")])
def test_backend_typo_names_the_nearest_value(value, hint):
    config = {"DATA": {"TRAIN": {"AUGMENT_BACKEND": value, "TRANSFORMS": TAIL}}}
    with pytest.raises(ConfigError, match=f"must be one of .*got '{value}' \\(did you mean `{hint}`\\?\\)"):
        apply_augment_backend(config)


def test_backend_null_is_a_config_error():
    with pytest.raises(ConfigError, match="must be one of .*got None$"):
        apply_augment_backend({"DATA": {"TRAIN": {"AUGMENT_BACKEND": None, "TRANSFORMS": TAIL}}})


BAD_TAILS = [
    ([{"name": "ImgPilColorDistortion", "strength": 0.5}, {"name": "ToTensor"}, {"name": "Normalize"}],
     "Normalize needs mean and std"),  # was KeyError 'mean'
    ([{"name": "ImgPilColorDistortion", "strength": 0.5}, {"name": "ImgPilGaussianBlur", "p": 2.0, "radius_min": 0.1,
      "radius_max": 2.0}, {"name": "ToTensor"}], "blur_p must be a probability"),  # was in every worker (fast)
    ([{"name": "ImgPilColorDistortion", "strength": "abc"}, {"name": "ToTensor"}], "bad augmentation parameters"),
    ([{"name": "ImgPilColorDistortion", "strength": 5}, {"name": "ToTensor"}], "hue values"),
    ([{"name": "ImgPilColorDistortion", "strength": 0.5}, {"name": "RandomHorizontalFlip", "p": 3},
      {"name": "ToTensor"}], "flip_p must be a probability"),
    ([{"name": "ImgPilColorDistortion", "strength": 0.5}, {"name": "ToTensor"},
      {"name": "Normalize", "mean": [0.5] * 3, "std": [0.0, 0.2, 0.2]}], "std must be > 0"),  # was inf pixels
    ([{"name": "ImgPilColorDistortion", "strength": 0.5}, {"name": "ToTensor"},
      {"name": "Normalize", "mean": [0.5] * 2, "std": [0.2] * 2}], "mean must be 3 numbers"),
]


@pytest.mark.parametrize("backend", ["fast", "device"])
@pytest.mark.parametrize("tail,says", BAD_TAILS)
def test_bad_tail_values_are_config_errors(backend, tail, says):
    """Checked once when the config is composed: before, fast passed them on to every data-loader
    worker (crash, or inf pixels for std 0) and device crashed in the launcher with a traceback."""
    with pytest.raises(ConfigError, match=says):
        rewrite_transforms([{"name": "RandomResizedCrop", "size": 32}] + tail, backend, "T")


def test_fast_transform_by_hand_refuses_std_zero():
    from vissl_ext.data.transforms.fast_augment import FastMocoV2Aug

    with pytest.raises(ValueError, match="std > 0"):
        FastMocoV2Aug.from_config({"mean": [0.5] * 3, "std": [0.2, 0.0, 0.2]})
