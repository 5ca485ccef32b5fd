"""The paper's ADE20K head: "a two-layered upsampling neural network" (FCN, Long et al. 2015).

Registered in detectron2's SEM_SEG_HEADS_REGISTRY as ``TwoLayerUpsampleHead``. Choice (the paper
gives no more detail): on one trunk feature (default ``res5``, stride 32, the representation the
linear probes evaluate), conv 3x3 -> ReLU -> conv 1x1 to class scores, then bilinear upsampling
by the feature's stride (FCN-32s style), cross-entropy with the ignore label. Everything before it
is the frozen trunk, so the head is all that learns: a feature evaluation, not fine-tuning.

Images are not padded to a multiple of the stride: the upsampled map is at least as large as the
(batch-padded) image, and it is cropped to the target for the loss and by detectron2's
``sem_seg_postprocess`` at inference.

Training loss on a pixel grid (``MODEL.SEM_SEG_HEAD.LOSS_STRIDE``, default 4): the loss is the
full-resolution cross-entropy of the upsampled logits, evaluated at every 4th pixel in each
direction (the bilinear upsampling is computed exactly at those pixels with grid_sample). It is an
unbiased subsample of the full-resolution loss at 1/16 of its cost (upsampling 150 class maps by
32 and the softmax over them cost a third of a frozen ResNet-50's forward on CPU otherwise);
DeepLab subsampled the ground truth by 8 during training for the same reason. LOSS_STRIDE 1 gives
the plain full-resolution loss. Inference is always at full resolution.
"""
from typing import Dict

import torch
import torch.nn.functional as F
from torch import nn

from vissl_ext.segmentation import d2_compat  # noqa: F401  (the package applies the d2 fixes before detectron2 imports)
from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY


def add_segmentation_config(cfg):
    """Our config keys on a detectron2 CfgNode (before merging a file that sets them)."""
    cfg.MODEL.SEM_SEG_HEAD.LOSS_STRIDE = 4
    return cfg


@SEM_SEG_HEADS_REGISTRY.register()
class TwoLayerUpsampleHead(nn.Module):
    @configurable
    def __init__(self, input_shape: Dict[str, ShapeSpec], *, in_feature: str, num_classes: int, conv_dims: int,
                 norm: str = "", ignore_value: int = -1, loss_weight: float = 1.0, loss_stride: int = 4):
        super().__init__()
        if in_feature not in input_shape:
            raise ValueError(f"TwoLayerUpsampleHead: feature {in_feature!r} is not produced by the backbone "
                             f"({sorted(input_shape)}); set MODEL.RESNETS.OUT_FEATURES to include it")
        shape = input_shape[in_feature]
        self.in_feature = in_feature
        self.stride = shape.stride
        self.ignore_value = ignore_value
        self.loss_weight = loss_weight
        if loss_stride < 1:
            raise ValueError(f"MODEL.SEM_SEG_HEAD.LOSS_STRIDE must be >= 1, got {loss_stride}")
        self.loss_stride = int(loss_stride)
        self.conv = Conv2d(shape.channels, conv_dims, kernel_size=3, padding=1, bias=not norm,
                           norm=get_norm(norm, conv_dims), activation=F.relu)
        self.predictor = Conv2d(conv_dims, num_classes, kernel_size=1)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)
        nn.init.normal_(self.predictor.weight, std=0.001)
        nn.init.zeros_(self.predictor.bias)

    @classmethod
    def from_config(cls, cfg, input_shape: Dict[str, ShapeSpec]):
        feats = list(cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES)
        if len(feats) != 1:
            raise ValueError(f"TwoLayerUpsampleHead takes exactly one feature, got MODEL.SEM_SEG_HEAD.IN_FEATURES={feats}")
        return {
            "input_shape": input_shape,
            "in_feature": feats[0],
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "conv_dims": cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM,
            "norm": cfg.MODEL.SEM_SEG_HEAD.NORM,
            "ignore_value": cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE,
            "loss_weight": cfg.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT,
            "loss_stride": cfg.MODEL.SEM_SEG_HEAD.get("LOSS_STRIDE", 4),
        }

    def layers(self, features):
        """Class scores at the feature's resolution."""
        return self.predictor(self.conv(features[self.in_feature]))

    def upsample(self, scores):
        return F.interpolate(scores, scale_factor=self.stride, mode="bilinear", align_corners=False)

    def forward(self, features, targets=None):
        scores = self.layers(features)
        if self.training:
            return None, self.losses(scores, targets)
        return self.upsample(scores), {}

    def sample_upsampled(self, scores, ys, xs):
        """``self.upsample(scores)[..., ys, :][..., xs]`` computed only at those pixels. Same
        sampling rule as F.interpolate(bilinear, align_corners=False): source coordinate
        (p + 0.5) / stride - 0.5, clamped at the border."""
        h, w = scores.shape[-2:]
        gy = (2 * (ys.to(scores.dtype) + 0.5) / (self.stride * h)) - 1
        gx = (2 * (xs.to(scores.dtype) + 0.5) / (self.stride * w)) - 1
        grid = torch.stack(torch.meshgrid(gy, gx, indexing="ij")[::-1], dim=-1)
        grid = grid.unsqueeze(0).expand(scores.shape[0], -1, -1, -1)
        return F.grid_sample(scores, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def losses(self, scores, targets):
        h, w = targets.shape[-2:]
        s = self.loss_stride
        if s == 1:
            predictions = self.upsample(scores)[..., :h, :w]
        else:
            ys = torch.arange(s // 2, h, s, device=targets.device)
            xs = torch.arange(s // 2, w, s, device=targets.device)
            predictions = self.sample_upsampled(scores, ys, xs)
            targets = targets[:, ys][:, :, xs]
        loss = F.cross_entropy(predictions, targets, reduction="mean", ignore_index=self.ignore_value)
        return {"loss_sem_seg": loss * self.loss_weight}
