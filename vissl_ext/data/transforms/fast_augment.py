"""MoCo v2's photometric augmentation on uint8 arrays with OpenCV: a drop-in for VISSL's
``ImgPilColorDistortion`` + ``ImgPilGaussianBlur`` (+ flip, ToTensor, Normalize) at a fraction
of their cost.

Semantics are torchvision's functional ops (``adjust_brightness/contrast/saturation/hue``,
``rgb_to_grayscale``, ``gaussian_blur``), evaluated in float32 and rounded once, so the output
is within a grey level or two of torchvision's own (tests/data/test_fast_augment.py measures it
on real frames). The random parameters follow the host's distributions exactly: the ranges and
probabilities are read off the host transform objects built from the same config, and drawn
from torch's RNG as torchvision does (seeded per data-loader worker by PyTorch).

Images are HxWx3 RGB uint8 numpy arrays (PIL images are accepted and converted once).
"""
import math
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from classy_vision.dataset.transforms.classy_transform import ClassyTransform

from vissl_ext.registry import register_transform

# torchvision's rgb_to_grayscale weights (ITU-R 601-2 luma, as torchvision writes them)
GRAY_WEIGHTS = (0.2989, 0.587, 0.114)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
JITTER_OPS = ("brightness", "contrast", "saturation", "hue")  # torchvision's fn_idx numbering


# --------------------------------------------------------------------------------------------
# parameters
# --------------------------------------------------------------------------------------------
@dataclass
class ViewParams:
    """The random parameters of one MoCo v2 view (what a single draw of the pipeline decides)."""

    jitter: bool = False
    order: Tuple[int, ...] = (0, 1, 2, 3)  # indices into JITTER_OPS, applied in this order
    brightness: float = 1.0
    contrast: float = 1.0
    saturation: float = 1.0
    hue: float = 0.0
    gray: bool = False
    sigma: float = 0.0  # Gaussian blur sigma; 0: no blur
    flip: bool = False


@dataclass
class MocoV2Distribution:
    """MoCo v2's augmentation distributions: ColorJitter(0.4, 0.4, 0.4, 0.1) with p=0.8 in a
    random order of its four ops, grayscale p=0.2, Gaussian blur sigma ~ U[0.1, 2] with p=0.5,
    horizontal flip p=0.5 (factor ranges as torchvision's ColorJitter stores them)."""

    brightness: Tuple[float, float] = (0.6, 1.4)
    contrast: Tuple[float, float] = (0.6, 1.4)
    saturation: Tuple[float, float] = (0.6, 1.4)
    hue: Tuple[float, float] = (-0.1, 0.1)
    jitter_p: float = 0.8
    gray_p: float = 0.2
    blur_p: float = 0.5
    sigma: Tuple[float, float] = (0.1, 2.0)
    flip_p: float = 0.5

    def validate(self) -> "MocoV2Distribution":
        for name in ("jitter_p", "gray_p", "blur_p", "flip_p"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
        for name in ("brightness", "contrast", "saturation"):
            lo, hi = getattr(self, name)
            if not 0.0 <= lo <= hi:
                raise ValueError(f"{name} range must satisfy 0 <= min <= max, got {(lo, hi)}")
        lo, hi = self.hue
        if not -0.5 <= lo <= hi <= 0.5:
            raise ValueError(f"hue range must lie in [-0.5, 0.5], got {(lo, hi)}")
        lo, hi = self.sigma
        if self.blur_p > 0 and not 0.0 < lo <= hi:
            raise ValueError(f"blur sigma range must satisfy 0 < min <= max, got {(lo, hi)}")
        return self

    def sample(self, generator: Optional[torch.Generator] = None) -> ViewParams:
        """One view's parameters, drawn from torch's RNG like torchvision's transforms."""
        u = torch.rand(9, generator=generator, dtype=torch.float64).tolist()

        def between(r, v):
            return r[0] + (r[1] - r[0]) * v

        jitter = u[0] < self.jitter_p
        return ViewParams(
            jitter=jitter,
            order=tuple(torch.randperm(4, generator=generator).tolist()) if jitter else (0, 1, 2, 3),
            brightness=between(self.brightness, u[1]) if jitter else 1.0,
            contrast=between(self.contrast, u[2]) if jitter else 1.0,
            saturation=between(self.saturation, u[3]) if jitter else 1.0,
            hue=between(self.hue, u[4]) if jitter else 0.0,
            gray=u[5] < self.gray_p,
            sigma=between(self.sigma, u[7]) if u[6] < self.blur_p else 0.0,
            flip=u[8] < self.flip_p,
        )

    @classmethod
    def from_host(cls, color_distortion=None, blur=None, flip_p: float = 0.0) -> "MocoV2Distribution":
        """The distributions of VISSL's ImgPilColorDistortion / ImgPilGaussianBlur objects, read
        off them (so a fast transform built from a host config draws what the host would)."""
        d = cls(jitter_p=0.0, gray_p=0.0, blur_p=0.0, flip_p=float(flip_p))
        if color_distortion is not None:
            cj = color_distortion.color_jitter
            d.brightness, d.contrast, d.saturation = (_range(cj.brightness, (1.0, 1.0)), _range(cj.contrast, (1.0, 1.0)),
                                                      _range(cj.saturation, (1.0, 1.0)))
            d.hue = _range(cj.hue, (0.0, 0.0))
            d.jitter_p = float(color_distortion.rnd_color_jitter.p)
            d.gray_p = float(color_distortion.rnd_gray.p)
        if blur is not None:
            d.blur_p, d.sigma = float(blur.prob), (float(blur.radius_min), float(blur.radius_max))
        return d.validate()


def _range(r, neutral):
    return tuple(float(v) for v in r) if r is not None else neutral


# --------------------------------------------------------------------------------------------
# ops: HxWx3 float32 images in 0..255 (jitter) or uint8 (the rest)
# --------------------------------------------------------------------------------------------
_WORKER_THREADS_SET = False


def _one_opencv_thread_in_workers():
    """OpenCV's own thread pool in every data-loader worker oversubscribes the cores (the
    workers are the parallelism); PyTorch does the same for its intra-op threads."""
    global _WORKER_THREADS_SET
    if not _WORKER_THREADS_SET and torch.utils.data.get_worker_info() is not None:
        cv2.setNumThreads(1)
        _WORKER_THREADS_SET = True


def as_uint8_array(img) -> np.ndarray:
    """HxWx3 RGB uint8 array of a PIL image or an array (no copy when already one)."""
    _one_opencv_thread_in_workers()
    if isinstance(img, np.ndarray):
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise TypeError(f"expected an HxWx3 uint8 RGB array, got {img.dtype} {img.shape}")
        return img
    if hasattr(img, "convert"):
        return np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    raise TypeError(f"expected a PIL image or an HxWx3 uint8 array, got {type(img).__name__}")


def _gray_mean(x: np.ndarray) -> float:
    m = cv2.mean(x)
    return GRAY_WEIGHTS[0] * m[0] + GRAY_WEIGHTS[1] * m[1] + GRAY_WEIGHTS[2] * m[2]


def adjust_brightness(x: np.ndarray, factor: float) -> np.ndarray:
    """torchvision adjust_brightness: clamp(factor * x)."""
    x = np.multiply(x, np.float32(factor), out=x)  # in place: cv2.multiply by a Scalar is 10x slower
    return np.clip(x, 0.0, 255.0, out=x)


def adjust_contrast(x: np.ndarray, factor: float) -> np.ndarray:
    """torchvision adjust_contrast: blend with the mean of the grayscale image."""
    x = cv2.addWeighted(x, factor, x, 0.0, (1.0 - factor) * _gray_mean(x))
    return np.clip(x, 0.0, 255.0, out=x)


def adjust_saturation(x: np.ndarray, factor: float) -> np.ndarray:
    """torchvision adjust_saturation: blend with the grayscale image (one 3x3 colour matrix)."""
    m = (1.0 - factor) * np.tile(np.asarray(GRAY_WEIGHTS, np.float32), (3, 1)) + factor * np.eye(3, dtype=np.float32)
    x = cv2.transform(x, m)
    return np.clip(x, 0.0, 255.0, out=x)


def adjust_hue(x: np.ndarray, factor: float) -> np.ndarray:
    """torchvision adjust_hue: shift the HSV hue by ``factor`` turns, in float32 HSV (OpenCV's
    uint8 HSV would quantise hue to 180 or 256 steps: up to 3 grey levels off)."""
    if factor == 0.0:
        return x
    hsv = cv2.cvtColor(x, cv2.COLOR_RGB2HSV)  # float: H in degrees, V in the input's 0..255 scale
    # a shift in [0, 360): OpenCV wraps H >= 360 on the way back, but its SIMD path does not
    # wrap negative H (13 grey levels off for factor -0.1 on real frames)
    hsv[..., 0] += (factor % 1.0) * 360.0
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


_JITTER_FNS = (adjust_brightness, adjust_contrast, adjust_saturation, adjust_hue)


def color_jitter(img: np.ndarray, p: ViewParams) -> np.ndarray:
    """The four jitter ops in ``p.order``, in float32, each clamped as torchvision clamps;
    rounded to uint8 once at the end."""
    if not p.jitter:
        return img
    x = img.astype(np.float32)
    factors = (p.brightness, p.contrast, p.saturation, p.hue)
    for i in p.order:
        x = _JITTER_FNS[i](x, factors[i])
    return cv2.convertScaleAbs(x)  # values are in [0, 255]: abs is a no-op, rounds and saturates


def grayscale(img: np.ndarray) -> np.ndarray:
    """torchvision rgb_to_grayscale(num_output_channels=3)."""
    g = cv2.transform(img, np.asarray([GRAY_WEIGHTS], np.float32))
    return cv2.merge((g, g, g))


def gaussian_kernel_size(sigma: float) -> int:
    """Odd kernel covering +-3 sigma (the mass left out is under 0.3%)."""
    return 2 * math.ceil(3.0 * sigma) + 1


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """torchvision gaussian_blur(kernel_size=gaussian_kernel_size(sigma), sigma), reflect border:
    separable, float kernel, one rounding."""
    k = gaussian_kernel_size(sigma)
    # the kernel must fit the reflect padding of small images (e.g. 64 px test views)
    k = min(k, 2 * ((min(img.shape[:2]) - 1) // 2) + 1)
    g = cv2.getGaussianKernel(k, sigma, cv2.CV_32F)
    return cv2.sepFilter2D(img, -1, g, g, borderType=cv2.BORDER_REFLECT_101)


def hflip(img: np.ndarray) -> np.ndarray:
    return cv2.flip(img, 1)


def to_normalized_tensor(img: np.ndarray, mean: Optional[Sequence[float]] = None,
                         std: Optional[Sequence[float]] = None) -> torch.Tensor:
    """ToTensor (+ Normalize when mean/std are given) in one pass: float32 CxHxW tensor."""
    h, w, _ = img.shape
    out = torch.empty((3, h, w), dtype=torch.float32)
    o = out.numpy()
    for c, plane in enumerate(cv2.split(img)):
        o[c] = plane
    scale = np.full(3, 1.0 / 255.0)
    shift = np.zeros(3)
    if mean is not None:
        std = np.asarray(std, np.float64)
        scale, shift = scale / std, np.asarray(mean, np.float64) / std
    o *= scale.astype(np.float32)[:, None, None]
    o -= shift.astype(np.float32)[:, None, None]
    return out


def augment_view(img, p: ViewParams, mean=None, std=None, to_tensor: bool = True):
    """The whole MoCo v2 photometric tail for one view: jitter, grayscale, blur, flip, then a
    normalised tensor (``to_tensor``) or the uint8 array."""
    x = color_jitter(as_uint8_array(img), p)
    if p.gray:
        x = grayscale(x)
    if p.sigma > 0:
        x = gaussian_blur(x, p.sigma)
    if p.flip:
        x = hflip(x)
    return to_normalized_tensor(x, mean, std) if to_tensor else x


# --------------------------------------------------------------------------------------------
# registered transforms
# --------------------------------------------------------------------------------------------
def _host_color_distortion(strength: float):
    from vissl.data.ssl_transforms.img_pil_color_distortion import ImgPilColorDistortion

    return ImgPilColorDistortion(strength=strength)


def _host_blur(config: Dict[str, Any]):
    from vissl.data.ssl_transforms.img_pil_gaussian_blur import ImgPilGaussianBlur

    return ImgPilGaussianBlur.from_config(dict(config))


@register_transform("FastColorDistortion")
class FastColorDistortion(ClassyTransform):
    """Drop-in for ImgPilColorDistortion (same ``strength`` key, same distributions): colour
    jitter with p=0.8 in a random op order, then grayscale with p=0.2. PIL image or uint8 array
    in, uint8 array out."""

    def __init__(self, dist: MocoV2Distribution):
        self.dist = dist

    def __call__(self, img):
        p = self.dist.sample()
        x = color_jitter(as_uint8_array(img), p)
        return grayscale(x) if p.gray else x

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "FastColorDistortion":
        return cls(MocoV2Distribution.from_host(_host_color_distortion(config.get("strength", 1.0))))


@register_transform("FastGaussianBlur")
class FastGaussianBlur(ClassyTransform):
    """Drop-in for ImgPilGaussianBlur (keys ``p``, ``radius_min``, ``radius_max``: sigma ~
    U[radius_min, radius_max] with probability p). PIL image or uint8 array in, array out."""

    def __init__(self, dist: MocoV2Distribution):
        self.dist = dist

    def __call__(self, img):
        x = as_uint8_array(img)
        if float(torch.rand(1)) >= self.dist.blur_p:
            return x
        lo, hi = self.dist.sigma
        return gaussian_blur(x, lo + (hi - lo) * float(torch.rand(1, dtype=torch.float64)))

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "FastGaussianBlur":
        return cls(MocoV2Distribution.from_host(blur=_host_blur(config)))


@register_transform("FastMocoV2Aug")
class FastMocoV2Aug(ClassyTransform):
    """MoCo v2's whole photometric tail in one transform: colour distortion, blur, flip and a
    normalised tensor, i.e. the host list

        ImgPilColorDistortion, ImgPilGaussianBlur, [RandomHorizontalFlip], ToTensor, Normalize

    Config keys: ``strength`` (ImgPilColorDistortion's), ``blur`` (ImgPilGaussianBlur's keys;
    ``null``: no blur), ``flip_p`` (0 inside ImageOnly: the boxes would not follow), ``mean``,
    ``std`` (``null``: ToTensor alone), ``to_tensor`` (False: return the uint8 array).
    """

    def __init__(self, dist: MocoV2Distribution, mean=IMAGENET_MEAN, std=IMAGENET_STD, to_tensor: bool = True):
        self.dist, self.mean, self.std, self.to_tensor = dist, mean, std, to_tensor
        if (mean is None) != (std is None):
            raise ValueError("FastMocoV2Aug: give both mean and std, or neither")
        if std is not None and (len(std) != 3 or len(mean) != 3 or min(std) <= 0):  # inf pixels otherwise
            raise ValueError(f"FastMocoV2Aug: mean and std must be 3 numbers each, std > 0; got {mean}, {std}")

    def __call__(self, img):
        return augment_view(img, self.dist.sample(), self.mean, self.std, self.to_tensor)

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "FastMocoV2Aug":
        blur = config.get("blur", {"p": 0.5, "radius_min": 0.1, "radius_max": 2.0})
        dist = MocoV2Distribution.from_host(_host_color_distortion(config.get("strength", 0.5)),
                                            _host_blur(blur) if blur else None, config.get("flip_p", 0.5))
        mean, std = config.get("mean", IMAGENET_MEAN), config.get("std", IMAGENET_STD)
        return cls(dist, None if mean is None else tuple(mean), None if std is None else tuple(std),
                   bool(config.get("to_tensor", True)))


def resized_crop(img: np.ndarray, top: int, left: int, height: int, width: int, size: Tuple[int, int]) -> np.ndarray:
    """Crop and resize to ``size`` (h, w) with OpenCV: area averaging when shrinking (the
    antialiasing PIL's filter also gives), bilinear when enlarging."""
    x = img[max(top, 0):top + height, max(left, 0):left + width]
    out_h, out_w = size
    shrink = x.shape[0] > out_h and x.shape[1] > out_w
    return cv2.resize(x, (out_w, out_h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


@register_transform("FastRandomResizedCrop")
class FastRandomResizedCrop(ClassyTransform):
    """torchvision's RandomResizedCrop (its own ``get_params``: same crops, same RNG) resized
    with OpenCV on uint8 arrays instead of PIL: several times faster; the pixels differ from
    PIL's antialiased bilinear filter by the choice of resampling filter only. PIL image or
    array in, uint8 array out. Keys as RandomResizedCrop: ``size``, ``scale``, ``ratio``."""

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.scale, self.ratio = tuple(scale), tuple(ratio)

    def __call__(self, img):
        from torchvision.transforms import RandomResizedCrop

        width, height = (img.shape[1], img.shape[0]) if isinstance(img, np.ndarray) else img.size
        shape_only = torch.empty((3, height, width), device="meta")  # get_params reads the size only
        top, left, h, w = RandomResizedCrop.get_params(shape_only, list(self.scale), list(self.ratio))
        if not isinstance(img, np.ndarray):
            # PIL -> numpy costs about as much as the resize: convert the crop only
            img, top, left = img.crop((left, top, left + w, top + h)), 0, 0
        return resized_crop(as_uint8_array(img), top, left, h, w, self.size)

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "FastRandomResizedCrop":
        return cls(config["size"], config.get("scale", (0.08, 1.0)), config.get("ratio", (3 / 4, 4 / 3)))


@register_transform("ToUint8Tensor")
class ToUint8Tensor(ClassyTransform):
    """PIL image or HxWx3 uint8 array -> 3xHxW uint8 tensor: what the data-loader workers hand
    over when the photometric augmentation runs batched on the training device."""

    def __call__(self, img):
        x = as_uint8_array(img)
        out = torch.empty((3, x.shape[0], x.shape[1]), dtype=torch.uint8)
        o = out.numpy()
        for c, plane in enumerate(cv2.split(x)):
            o[c] = plane
        return out

    @classmethod
    def from_config(cls, config: Dict[str, Any]) -> "ToUint8Tensor":
        return cls()


__all__ = ["ViewParams", "MocoV2Distribution", "augment_view", "color_jitter", "grayscale", "gaussian_blur",
           "to_normalized_tensor", "adjust_brightness", "adjust_contrast", "adjust_saturation", "adjust_hue"]
