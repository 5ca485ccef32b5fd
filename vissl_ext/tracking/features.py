"""ROI-pooled trunk features of regions: one trunk forward per batch of frames, one roi_align
call for every box of the batch."""
from typing import List, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from vissl_ext.models.strides import FEATURE_STRIDE

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def input_size(width: int, height: int, short_side: int):
    """(W, H) of the trunk input: short side resized to ``short_side`` (0: as stored)."""
    if not short_side:
        return width, height
    s = short_side / min(width, height)
    return max(1, round(width * s)), max(1, round(height * s))


def frames_to_batch(images: Sequence, short_side: int) -> torch.Tensor:
    """Same-size PIL frames -> normalised (N, 3, H, W) float tensor at the trunk input size."""
    arr = torch.from_numpy(np.stack([np.asarray(im.convert("RGB")) for im in images]))
    x = arr.permute(0, 3, 1, 2).float().div_(255)
    W, H = input_size(x.shape[3], x.shape[2], short_side)
    if (H, W) != tuple(x.shape[2:]):
        x = F.interpolate(x, size=(H, W), mode="bilinear", align_corners=False, antialias=True)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


class RegionFeatures:
    """L2-normalised, flattened ROIAlign features (C * pool * pool) of boxes given in pixels of
    the frames as stored."""

    def __init__(self, trunk: torch.nn.Module, feature: str = "res4", pool_size: int = 3, short_side: int = 256,
                 device: str = "cpu", sampling_ratio: int = 2):
        if feature not in FEATURE_STRIDE:
            raise ValueError(f"feature {feature!r} is not one of {sorted(FEATURE_STRIDE)}")
        self.trunk = trunk.to(device).eval()
        self.feature = feature
        self.pool_size = pool_size
        self.short_side = short_side
        self.device = torch.device(device)
        self.sampling_ratio = sampling_ratio
        self.timings = {"forward": 0.0, "pool": 0.0}

    @torch.no_grad()
    def feature_maps(self, x: torch.Tensor) -> torch.Tensor:
        return self.trunk(x.to(self.device, non_blocking=True), out_feat_keys=[self.feature])[0]

    @torch.no_grad()
    def pool(self, fmap: torch.Tensor, boxes: List[torch.Tensor], scale_xy) -> List[torch.Tensor]:
        """roi_align over all boxes of the batch at once; boxes in stored pixels, scale_xy maps
        them to the trunk input. Returns per-frame (n_i, D) unit vectors."""
        sx, sy = scale_xy
        scale = torch.tensor([sx, sy, sx, sy], dtype=torch.float32, device=self.device)
        rois = [b.to(self.device, torch.float32) * scale for b in boxes]
        pooled = roi_align(fmap, rois, output_size=self.pool_size, spatial_scale=1.0 / FEATURE_STRIDE[self.feature],
                           sampling_ratio=self.sampling_ratio, aligned=True)
        flat = F.normalize(pooled.flatten(1), dim=1)
        return list(flat.split([len(b) for b in boxes]))

    @torch.no_grad()
    def __call__(self, images: Sequence, boxes: List[np.ndarray]) -> List[torch.Tensor]:
        """Features of ``boxes[i]`` on ``images[i]`` (same-size frames)."""
        import time

        W, H = images[0].size
        x = frames_to_batch(images, self.short_side)
        t0 = time.perf_counter()
        fmap = self.feature_maps(x)
        _sync(self.device)
        t1 = time.perf_counter()
        out = self.pool(fmap, [torch.as_tensor(np.asarray(b, np.float32)).reshape(-1, 4) for b in boxes],
                        (x.shape[3] / W, x.shape[2] / H))
        _sync(self.device)
        self.timings["forward"] += t1 - t0
        self.timings["pool"] += time.perf_counter() - t1
        return out


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)
