"""MoCo v2's photometric augmentation, batched on the training device with kornia.

Data-loader workers hand over uint8 views (decode + random-resized crop, ``ToUint8Tensor``);
:class:`DeviceMocoV2Aug` then applies colour jitter, grayscale, Gaussian blur, horizontal flip
and normalisation to the whole batch at once, each sample with its own random parameters drawn
from the same distributions as the CPU paths (:class:`~vissl_ext.data.transforms.fast_augment.MocoV2Distribution`).

kornia's ColorJitter draws one op order per batch; MoCo v2 (torchvision's ColorJitter per image)
draws one per sample. :class:`PerSampleOrderColorJitter` keeps kornia's ops and factors and
draws the order per sample. The modules keep the parameters of the last call, which the tests
read back as per-sample ``ViewParams`` to replay the per-sample CPU path with the same draws
(``device_view_params`` in tests/vissl_ext_testing.py).
"""
from typing import Dict, Optional, Sequence

import torch
from kornia import augmentation as KA
from kornia.augmentation import random_generator as rg

from vissl_ext.data.transforms.fast_augment import (GRAY_WEIGHTS, IMAGENET_MEAN, IMAGENET_STD, MocoV2Distribution,
                                                    gaussian_kernel_size)


class _PerSampleOrderGenerator(rg.ColorJitterGenerator):
    def forward(self, batch_shape, same_on_batch: bool = False) -> Dict[str, torch.Tensor]:
        params = super().forward(batch_shape, same_on_batch)
        n = batch_shape[0]
        keys = torch.rand(1 if same_on_batch else n, 4).expand(n, 4)
        params["order"] = torch.argsort(keys, dim=1)  # a uniform random permutation per sample
        return params


class PerSampleOrderColorJitter(KA.ColorJitter):
    """kornia's torchvision-compatible ColorJitter with a random op order per sample ([B, 4]
    ``order`` parameter) instead of one per batch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._param_generator = _PerSampleOrderGenerator(self.brightness, self.contrast, self.saturation, self.hue)

    def apply_transform(self, input, params, flags, transform=None):
        x = input.clamp(0.0, 1.0)
        order = params["order"].to(x.device)
        if order.ndim == 1:  # a kornia-style shared order
            order = order.expand(x.shape[0], 4)
        steps = (self._brightness_fn, self._contrast_fn, self._saturation_fn, self._adjust_hue_turns)
        factors = [params[k].to(x.device, x.dtype) for k in
                   ("brightness_factor", "contrast_factor", "saturation_factor", "hue_factor")]
        for position in range(4):
            for op in range(4):
                idx = (order[:, position] == op).nonzero().squeeze(1)
                if idx.numel():
                    x = x.index_copy(0, idx, steps[op](x.index_select(0, idx), factors[op].index_select(0, idx)))
        return x.clamp(0.0, 1.0)


class DeviceMocoV2Aug(torch.nn.Module):
    """uint8 [B, 3, H, W] views (any device) -> normalised float32 views, MoCo v2's photometric
    augmentation with per-sample parameters. ``flip_p`` 0 leaves flipping to the CPU side
    (region pairs: the boxes must flip with the pixels)."""

    def __init__(self, dist: Optional[MocoV2Distribution] = None, mean: Optional[Sequence[float]] = IMAGENET_MEAN,
                 std: Optional[Sequence[float]] = IMAGENET_STD):
        super().__init__()
        self.dist = (dist or MocoV2Distribution()).validate()
        d = self.dist
        self.jitter = PerSampleOrderColorJitter(d.brightness, d.contrast, d.saturation, d.hue, p=d.jitter_p)
        self.gray = KA.RandomGrayscale(rgb_weights=torch.tensor(GRAY_WEIGHTS), p=d.gray_p)
        # one kernel for the batch, wide enough for the largest sigma (the CPU path sizes its
        # kernel per sigma; the extra taps carry < 0.3% of the weight)
        self.kernel_size = gaussian_kernel_size(d.sigma[1])
        self.blur = KA.RandomGaussianBlur(self.kernel_size, d.sigma, p=d.blur_p) if d.blur_p > 0 else None
        self.flip = KA.RandomHorizontalFlip(p=d.flip_p) if d.flip_p > 0 else None
        if (mean is None) != (std is None):
            raise ValueError("DeviceMocoV2Aug: give both mean and std, or neither")
        self.normalize = mean is not None
        if self.normalize:  # buffers: they follow .to(device)
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @torch.no_grad()
    def forward(self, views: torch.Tensor) -> torch.Tensor:
        if views.dtype != torch.uint8 or views.ndim != 4 or views.shape[1] != 3:
            raise TypeError(f"DeviceMocoV2Aug expects uint8 [B, 3, H, W] views, got {views.dtype} {tuple(views.shape)} "
                            f"(end the worker transforms with ToUint8Tensor)")
        x = views.float().div_(255.0)
        x = self.jitter(x)
        x = self.gray(x)
        if self.blur is not None:
            if min(x.shape[-2:]) <= self.kernel_size // 2:
                raise ValueError(f"views of {tuple(x.shape[-2:])} px are too small for a {self.kernel_size}-tap blur")
            x = self.blur(x)
        if self.flip is not None:
            x = self.flip(x)
        return (x - self.mean) / self.std if self.normalize else x


def build_device_augment(spec: Dict) -> DeviceMocoV2Aug:
    """From the ``config.DATA.TRAIN.DEVICE_AUGMENT`` section written by the AUGMENT_BACKEND switch."""
    dist = MocoV2Distribution(
        brightness=tuple(spec["brightness"]), contrast=tuple(spec["contrast"]), saturation=tuple(spec["saturation"]),
        hue=tuple(spec["hue"]), jitter_p=spec["jitter_p"], gray_p=spec["gray_p"], blur_p=spec["blur_p"],
        sigma=tuple(spec["sigma"]), flip_p=spec["flip_p"])
    mean, std = spec.get("mean"), spec.get("std")
    return DeviceMocoV2Aug(dist, None if mean is None else list(mean), None if std is None else list(std))


__all__ = ["DeviceMocoV2Aug", "PerSampleOrderColorJitter", "build_device_augment"]
