"""``resnet_regions``: VISSL's ResNet trunk that also returns an intermediate feature map for
region features. Same modules and parameter names as ``resnet``, so its checkpoints load into
every host config (trunk NAME: resnet) unchanged.

``config.MODEL.TRUNK.CHANNELS_LAST: true`` keeps the trunk's weights and activations in
channels_last (NHWC) memory format, the layout of the GPU's tensor-core convolutions under mixed
precision; the outputs are the same up to float rounding (docs/mixed_precision.md). It is set
at build time, before VISSL wraps the model in DDP, so DDP's buckets see the final layout."""
from typing import List

import torch
from vissl.models.trunks.resnext import ResNeXt

from vissl_ext.config import ConfigError, register_config_validator
from vissl_ext.registry import register_model_trunk


def region_feature(model_config, feat_eval_mapping) -> str:
    """config.MODEL.TRUNK.REGION_FEATURE (default res4), checked against the trunk's features."""
    name = model_config.TRUNK.get("REGION_FEATURE", "res4")
    if name not in feat_eval_mapping:
        raise ValueError(f"config.MODEL.TRUNK.REGION_FEATURE={name!r} is not a ResNet feature; "
                         f"use one of res2, res3, res4, res5")
    return name


@register_model_trunk("resnet_regions")
class ResNetRegions(ResNeXt):
    """Training output: [flatten(avgpool(res5)), <REGION_FEATURE> map]; the two heads of
    pretrain/region_tracker take one each (frame embedding, dense region embedding). With
    explicit feature names (evaluation, feature extraction) it is VISSL's ResNet."""

    def __init__(self, model_config, model_name: str):
        super().__init__(model_config, model_name)
        self.region_feature = region_feature(model_config, self.feat_eval_mapping)
        self.channels_last = bool(model_config.TRUNK.get("CHANNELS_LAST", False))
        if self.channels_last:
            self.to(memory_format=torch.channels_last)

    def forward(self, x: torch.Tensor, out_feat_keys: List[str] = None) -> List[torch.Tensor]:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if out_feat_keys:  # feature evaluation / extraction: VISSL's ResNet as is
            return super().forward(x, out_feat_keys)
        # VISSL passes [] in training; its helper returns features in block order, so pick
        # them by shape: the flattened pooled features are 2-d, the region map 4-d
        feats = super().forward(x, ["flatten", self.region_feature])
        flat = [f for f in feats if f.dim() == 2]
        maps = [f for f in feats if f.dim() == 4]
        return [flat[0], maps[0]]


@register_config_validator
def validate_channels_last(config):
    """config.MODEL.TRUNK.CHANNELS_LAST is a boolean (``=yes`` would otherwise turn it on silently)."""
    value = config.MODEL.TRUNK.get("CHANNELS_LAST", False)
    if not isinstance(value, bool):
        raise ConfigError(f"config.MODEL.TRUNK.CHANNELS_LAST must be true or false, got {value!r}")
