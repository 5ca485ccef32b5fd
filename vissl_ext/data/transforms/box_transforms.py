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
        tries: 10          # box-aware: redraw until MAX_REGION_PAIRS pairs survive both views
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
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch
from classy_vision.dataset.transforms import build_transform
from classy_vision.dataset.transforms.classy_transform import ClassyTransform
from torchvision.transforms import RandomResizedCrop
from torchvision.transforms import functional as TF

from vissl_ext.config import need_int, need_number, register_config_validator
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
    the sample's cap on region pairs (applied by the collator once both views are cropped), and
    the crop window (top, left, height, width) in frame pixels once cropped."""

    img: Any
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    ids: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    max_pairs: int = 0
    crop: Optional[Tuple[int, int, int, int]] = None


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
    """RegionPair -> [BoxedView(z_i), BoxedView(z_{i+k})]: each view gets its own augmentation
    (a box-aware crop, ``tries`` > 1, draws the key's window knowing which tracks the query kept)."""

    def __call__(self, pair):
        if not isinstance(pair, RegionPair):
            raise TypeError("RegionPairToViews expects the samples of the video_region_pairs data source")
        return [BoxedView(f, np.asarray(b, np.float32).reshape(-1, 4), np.asarray(pair.ids, np.int64), pair.max_pairs)
                for f, b in zip(pair.frames, pair.boxes)]

    @classmethod
    def from_config(cls, config):
        return cls()


@register_transform("BoxRandomResizedCrop", groups_views=True)
class BoxRandomResizedCrop(ClassyTransform):
    """torchvision's RandomResizedCrop (same parameter sampling) moving the boxes along. A uint8
    array (frames decoded to arrays, AUGMENT_BACKEND fast/device) is resized with OpenCV, as
    FastRandomResizedCrop does.

    ``tries`` > 1 makes the crop box-aware by redrawing the window, as detection crops do (e.g.
    detectron2's RandomCrop_CategoryAreaConstraint, up to 10 draws): up to ``tries`` windows are
    drawn per view, and the first that keeps enough region pairs is taken, else the one keeping
    the most (the first of those). Enough: the sample's cap (MAX_REGION_PAIRS), or all of
    its pairs when it has fewer. VISSL hands a sample's views over together (a grouping
    transform), so the key view counts only the tracks the query view kept: a pair must survive
    both crops. A frame pair without a region pair takes its first window: only frame pairs with
    tracks see other crops than torchvision's (docs/tracking.md, "Region pairs and the crop").
    ``tries=1``: torchvision's draw exactly, each view on its own.
    """

    def __init__(self, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), min_visible: float = 0.5,
                 min_size: float = 4.0, tries: int = 1):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.min_visible, self.min_size = min_visible, min_size
        if isinstance(tries, bool) or not isinstance(tries, int) or tries < 1:
            raise ValueError(f"BoxRandomResizedCrop: tries must be an integer >= 1, got {tries!r}")
        self.tries = tries

    def __call__(self, views):
        """One BoxedView, or the list of a sample's views (query first) as VISSL groups them."""
        single = isinstance(views, BoxedView)
        views = [views] if single else list(views)
        for v in views:
            _need_view(v, "BoxRandomResizedCrop")
        out, query_ids = [], None
        for v in views:
            out.append(self._crop(v, query_ids))
            if query_ids is None:
                query_ids = out[0].ids  # the later views count the pairs the query kept
        return out[0] if single else out

    def _crop(self, view: BoxedView, among) -> BoxedView:
        candidates = view.ids if among is None else np.intersect1d(view.ids, among)
        need = len(candidates) if view.max_pairs <= 0 else min(view.max_pairs, len(candidates))
        best = None
        for _ in range(self.tries):
            window = self._window(view.img)
            boxes, keep = crop_boxes(view.boxes, *window, self.size[1], self.size[0], self.min_visible, self.min_size)
            n = int(np.isin(view.ids[keep], candidates).sum())
            if best is None or n > best[0]:
                best = (n, window, boxes, keep)
            if n >= need:
                break
        _, (top, left, h, w), boxes, keep = best
        if isinstance(view.img, np.ndarray):
            from vissl_ext.data.transforms.fast_augment import resized_crop

            img = resized_crop(view.img, top, left, h, w, self.size)
        else:
            img = TF.resized_crop(view.img, top, left, h, w, list(self.size), antialias=True)
        return replace(view, img=img, boxes=boxes[keep], ids=view.ids[keep], crop=(top, left, h, w))

    def _window(self, img):
        if isinstance(img, np.ndarray):
            width, height = image_size(img)
            img = torch.empty((3, height, width), device="meta")  # get_params reads the size only
        return RandomResizedCrop.get_params(img, self.scale, self.ratio)

    @classmethod
    def from_config(cls, config):
        return cls(config["size"], config.get("scale", (0.08, 1.0)), config.get("ratio", (3 / 4, 4 / 3)),
                   config.get("min_visible", 0.5), config.get("min_size", 4.0), config.get("tries", 1))


@register_config_validator
def _validate_box_crops(config):
    """BoxRandomResizedCrop's own keys in config.DATA.<split>.TRANSFORMS, when the config is
    composed (not in every data-loader worker)."""
    for split in ("TRAIN", "TEST"):
        for i, t in enumerate((config.get("DATA", {}).get(split, {}) or {}).get("TRANSFORMS", []) or []):
            if t.get("name") != "BoxRandomResizedCrop":
                continue
            where = f"config.DATA.{split}.TRANSFORMS[{i}] (BoxRandomResizedCrop)"
            need_int(t.get("tries", 1), f"{where}.tries", 1)
            need_number(t.get("min_visible", 0.5), f"{where}.min_visible", 0, 1)
            need_number(t.get("min_size", 4.0), f"{where}.min_size", 0)


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
