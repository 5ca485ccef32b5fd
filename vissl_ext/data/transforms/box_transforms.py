"""Box-aware MoCo v2 augmentation for region pairs.

A region-pair sample (two frames of one video with their matched boxes) becomes two
:class:`BoxedView` views with ``RegionPairToViews``; geometric transforms move the boxes with
the pixels (``BoxRandomResizedCrop``, ``BoxRandomHorizontalFlip``); ``ImageOnly`` runs any
host transform (colour distortion, blur, ToTensor, Normalize) on the image and leaves the
boxes alone. A box that (mostly) leaves the crop is dropped; the collator keeps a region pair
only where both of its boxes survive. Config::

    TRANSFORMS:
      - name: RegionPairToViews
      - name: BoxRandomResizedCrop
        size: 224
        scale: [0.2, 1.0]
      - name: BoxRandomHorizontalFlip
      - name: ImageOnly
        transforms:
          - {name: ImgPilColorDistortion, strength: 0.5}
          - {name: ImgPilGaussianBlur, p: 0.5, radius_min: 0.1, radius_max: 2.0}
          - {name: ToTensor}
          - {name: Normalize, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
"""
import random
from dataclasses import dataclass, field, replace
from typing import Any, List, Sequence

import numpy as np
import torch
from classy_vision.dataset.transforms import build_transform
from classy_vision.dataset.transforms.classy_transform import ClassyTransform
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms import functional as TF

from vissl_ext.registry import register_transform


@dataclass
class RegionPair:
    """What the ``video_region_pairs`` source returns: frames [z_i, z_{i+k}], their boxes
    (float32 [M, 4] x1 y1 x2 y2, row m of both belongs to track ids[m]) and how many of the
    pairs that survive the crops may reach the loss (0: all)."""

    frames: List[Any]
    boxes: List[np.ndarray]
    ids: np.ndarray
    max_pairs: int = 0


@dataclass
class BoxedView:
    """One augmented view: an image (PIL, later a tensor) with its boxes and their track ids, and
    the sample's cap on region pairs (applied by the collator once both views are cropped)."""

    img: Any
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    max_pairs: int = 0


def image_size(img):
    """(width, height) of a PIL image, an HxWx3 array or a CHW tensor."""
    if isinstance(img, np.ndarray):
        return img.shape[1], img.shape[0]
    if hasattr(img, "size") and not callable(img.size):
        return img.size
    return img.shape[-1], img.shape[-2]


def crop_boxes(boxes: np.ndarray, top: float, left: float, height: float, width: float, out_w: float, out_h: float,
               min_visible: float, min_size: float):
    """Boxes after cropping (top, left, height, width) and resizing to (out_w, out_h).

    Returns (boxes, keep): clipped boxes in output pixels and a mask of those kept, i.e. whose
    part inside the crop holds at least ``min_visible`` of the box area and is at least
    ``min_size`` output pixels on each side.
    """
    b = boxes.astype(np.float64).reshape(-1, 4)
    sx, sy = out_w / width, out_h / height
    x1, x2 = (b[:, 0] - left) * sx, (b[:, 2] - left) * sx
    y1, y2 = (b[:, 1] - top) * sy, (b[:, 3] - top) * sy
    full = np.maximum(x2 - x1, 0) * np.maximum(y2 - y1, 0)
    cx1, cy1 = np.clip(x1, 0, out_w), np.clip(y1, 0, out_h)
    cx2, cy2 = np.clip(x2, 0, out_w), np.clip(y2, 0, out_h)
    cw, ch = cx2 - cx1, cy2 - cy1
    visible = np.where(full > 0, np.maximum(cw, 0) * np.maximum(ch, 0) / np.maximum(full, 1e-12), 0.0)
    keep = (visible >= min_visible) & (cw >= min_size) & (ch >= min_size)
    return np.stack([cx1, cy1, cx2, cy2], 1).astype(np.float32), keep


def flip_boxes(boxes: np.ndarray, width: float) -> np.ndarray:
    out = boxes.copy()
    out[:, 0], out[:, 2] = width - boxes[:, 2], width - boxes[:, 0]
    return out


def _need_view(x, name):
    if not isinstance(x, BoxedView):
        raise TypeError(f"{name} expects a BoxedView (put RegionPairToViews first in the transform list), got {type(x).__name__}")


@register_transform("RegionPairToViews", makes_copies=True)
class RegionPairToViews(ClassyTransform):
    """RegionPair -> [BoxedView(z_i), BoxedView(z_{i+k})]: each view is augmented on its own."""

    def __call__(self, pair):
        if not isinstance(pair, RegionPair):
            raise TypeError("RegionPairToViews expects the samples of the video_region_pairs data source")
        return [BoxedView(f, np.asarray(b, np.float32).reshape(-1, 4), np.asarray(pair.ids, np.int64), pair.max_pairs)
                for f, b in zip(pair.frames, pair.boxes)]

    @classmethod
    def from_config(cls, config):
        return cls()


@register_transform("BoxRandomResizedCrop")
class BoxRandomResizedCrop(ClassyTransform):
    """torchvision's RandomResizedCrop (same parameter sampling) moving the boxes along. A uint8
    array (frames decoded to arrays, AUGMENT_BACKEND fast/device) is resized with OpenCV, as
    FastRandomResizedCrop does."""

    def __init__(self, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), min_visible: float = 0.5,
                 min_size: float = 4.0):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.min_visible, self.min_size = min_visible, min_size

    def __call__(self, view: BoxedView) -> BoxedView:
        _need_view(view, "BoxRandomResizedCrop")
        if isinstance(view.img, np.ndarray):
            from vissl_ext.data.transforms.fast_augment import resized_crop

            width, height = image_size(view.img)
            shape_only = torch.empty((3, height, width), device="meta")  # get_params reads the size only
            top, left, h, w = RandomResizedCrop.get_params(shape_only, self.scale, self.ratio)
            img = resized_crop(view.img, top, left, h, w, self.size)
        else:
            top, left, h, w = RandomResizedCrop.get_params(view.img, self.scale, self.ratio)
            img = TF.resized_crop(view.img, top, left, h, w, list(self.size), antialias=True)
        boxes, keep = crop_boxes(view.boxes, top, left, h, w, self.size[1], self.size[0], self.min_visible, self.min_size)
        return replace(view, img=img, boxes=boxes[keep], ids=view.ids[keep])

    @classmethod
    def from_config(cls, config):
        return cls(config["size"], config.get("scale", (0.08, 1.0)), config.get("ratio", (3 / 4, 4 / 3)),
                   config.get("min_visible", 0.5), config.get("min_size", 4.0))


@register_transform("BoxRandomHorizontalFlip")
class BoxRandomHorizontalFlip(ClassyTransform):
    def __init__(self, p: float = 0.5):
        self.p = p

    def __call__(self, view: BoxedView) -> BoxedView:
        _need_view(view, "BoxRandomHorizontalFlip")
        if random.random() >= self.p:
            return view
        w, _ = image_size(view.img)
        img = np.ascontiguousarray(view.img[:, ::-1]) if isinstance(view.img, np.ndarray) else TF.hflip(view.img)
        return replace(view, img=img, boxes=flip_boxes(view.boxes, w))

    @classmethod
    def from_config(cls, config):
        return cls(config.get("p", 0.5))


@register_transform("ImageOnly")
class ImageOnly(ClassyTransform):
    """Run host transforms (any registered name, with their own parameters) on the image of a
    BoxedView: photometric transforms and tensor conversion, which do not move boxes."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, view: BoxedView) -> BoxedView:
        _need_view(view, "ImageOnly")
        img = view.img
        for t in self.transforms:
            img = t(img)
        return replace(view, img=img)

    @classmethod
    def from_config(cls, config):
        specs = config.get("transforms")
        if not specs:
            raise ValueError("ImageOnly needs a 'transforms' list, e.g. [{name: ToTensor}]")
        geometric = {"RandomResizedCrop", "RandomHorizontalFlip", "RandomCrop", "CenterCrop", "Resize", "RandomRotation"}
        for s in specs:
            if s["name"] in geometric:
                raise ValueError(f"ImageOnly: {s['name']} moves pixels but not boxes; use BoxRandomResizedCrop / "
                                 f"BoxRandomHorizontalFlip before ImageOnly")
        return cls([build_transform(dict(s)) for s in specs])


__all__ = ["RegionPair", "BoxedView", "crop_boxes", "flip_boxes", "image_size"]
