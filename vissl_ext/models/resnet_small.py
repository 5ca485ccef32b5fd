"""``resnet_small``: ResNet-18/34 (torchvision BasicBlock) for VISSL, which builds ResNe(X)t from
depth 50 only. Options for small images: ``SMALL_STEM`` (CIFAR-style: one 3x3 stride-1 conv, no
max-pool, so a 32-64 px frame keeps a spatial map through res5) and ``BASE_WIDTH`` (channels of
res2; 64 as torchvision). Same block names and feature names (res2..res5, res5avg, flatten) as
VISSL's ``resnet``, so VISSL's feature extraction and our RIS and kNN read it unchanged.
``resnet_small_regions`` adds the region feature map as ``resnet_regions`` does."""
import logging
from typing import List

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, ResNet
from vissl.models.model_helpers import Flatten, get_trunk_forward_outputs, transform_model_input_data_type

from vissl_ext.models.region_trunk import region_feature
from vissl_ext.registry import register_model_trunk

SMALL_DEPTHS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


@register_model_trunk("resnet_small")
class ResNetSmall(nn.Module):
    """TRUNK.RESNETS: DEPTH (18 | 34), BASE_WIDTH (default 64), SMALL_STEM (default False),
    ZERO_INIT_RESIDUAL."""

    def __init__(self, model_config, model_name: str):
        super().__init__()
        self.model_config = model_config
        rc = model_config.TRUNK.RESNETS
        depth = int(rc.DEPTH)
        if depth not in SMALL_DEPTHS:
            raise ValueError(f"config.MODEL.TRUNK.RESNETS.DEPTH={depth}: resnet_small builds depth 18 or 34 "
                             f"(use trunk 'resnet' for 50 and deeper)")
        width = int(rc.get("BASE_WIDTH", 64))
        small = bool(rc.get("SMALL_STEM", False))
        if width < 1:
            raise ValueError(f"config.MODEL.TRUNK.RESNETS.BASE_WIDTH={width} must be positive")
        layers = SMALL_DEPTHS[depth]
        net = ResNet(BasicBlock, list(layers), zero_init_residual=bool(rc.get("ZERO_INIT_RESIDUAL", False)))
        # rebuild the stages at the requested width (torchvision's _make_layer reads inplanes)
        net.inplanes = width
        if small:
            conv1, pool = nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.Identity()
        else:
            conv1, pool = nn.Conv2d(3, width, 7, 2, 3, bias=False), nn.MaxPool2d(3, 2, 1)
        bn1 = nn.BatchNorm2d(width)
        stages = [net._make_layer(BasicBlock, width * m, n, stride=1 if i == 0 else 2)
                  for i, (m, n) in enumerate(zip((1, 2, 4, 8), layers))]
        for m in [conv1, *stages]:  # torchvision's init for the rebuilt modules
            for mod in m.modules():
                if isinstance(mod, nn.Conv2d):
                    nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
        if rc.get("ZERO_INIT_RESIDUAL", False):
            for s in stages:
                for b in s:
                    nn.init.zeros_(b.bn2.weight)
        self.out_dim = width * 8
        logging.info(f"Building model: ResNet-{depth} small (width {width}, {'small' if small else 'ImageNet'} stem)")
        self._feature_blocks = nn.ModuleDict([
            ("conv1", conv1), ("bn1", bn1), ("conv1_relu", nn.ReLU(inplace=True)), ("maxpool", pool),
            ("layer1", stages[0]), ("layer2", stages[1]), ("layer3", stages[2]), ("layer4", stages[3]),
            ("avgpool", nn.AdaptiveAvgPool2d((1, 1))), ("flatten", Flatten(1)),
        ])
        self.feat_eval_mapping = {"conv1": "conv1_relu", "res1": "maxpool", "res2": "layer1", "res3": "layer2",
                                  "res4": "layer3", "res5": "layer4", "res5avg": "avgpool", "flatten": "flatten"}

    def forward(self, x: torch.Tensor, out_feat_keys: List[str] = None) -> List[torch.Tensor]:
        return get_trunk_forward_outputs(
            feat=transform_model_input_data_type(x, self.model_config.INPUT_TYPE), out_feat_keys=out_feat_keys,
            feature_blocks=self._feature_blocks, feature_mapping=self.feat_eval_mapping,
            use_checkpointing=False, checkpointing_splits=1)


@register_model_trunk("resnet_small_regions")
class ResNetSmallRegions(ResNetSmall):
    """``resnet_small`` whose training output is [flatten(avgpool(res5)), <REGION_FEATURE> map],
    as ``resnet_regions`` (pretrain/region_tracker's two heads)."""

    def __init__(self, model_config, model_name: str):
        super().__init__(model_config, model_name)
        self.region_feature = region_feature(model_config, self.feat_eval_mapping)

    def forward(self, x: torch.Tensor, out_feat_keys: List[str] = None) -> List[torch.Tensor]:
        if out_feat_keys:
            return super().forward(x, out_feat_keys)
        feats = super().forward(x, ["flatten", self.region_feature])
        return [next(f for f in feats if f.dim() == 2), next(f for f in feats if f.dim() == 4)]
