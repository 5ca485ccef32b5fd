"""``dense_region_head``: the region projection head, applied densely (1x1 convolutions) to
the trunk's region feature map; ROIAlign then pools region embeddings from its output.

Projecting before pooling keeps every parameter inside the model's forward (DDP sees them, the
momentum encoder copies them like the rest of the model) and costs a few percent of the trunk.
It is the MoCo v2 projection MLP (Linear-ReLU-Linear) applied per location."""
from typing import List

import torch
from torch import nn

from vissl_ext.registry import register_model_head


@register_model_head("dense_region_head")
class DenseRegionHead(nn.Module):
    def __init__(self, model_config, dims: List[int]):
        super().__init__()
        if len(dims) < 2:
            raise ValueError(f"dense_region_head needs dims [in, ..., out], got {dims}")
        layers = []
        for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
            layers.append(nn.Conv2d(a, b, kernel_size=1))
            if i < len(dims) - 2:
                layers.append(nn.ReLU(inplace=True))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"dense_region_head expects a feature map [N, C, H, W], got shape {tuple(x.shape)}: "
                             f"use it with the resnet_regions trunk")
        return self.mlp(x)
