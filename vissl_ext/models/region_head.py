"""``dense_region_head``: the region projection head of pretrain/region_tracker, the MoCo v2
projection MLP (Linear-ReLU-Linear, written as 1x1 convolutions). Its ``embedding`` parameter
says which region embedding is trained (docs/region_embedding.md):

- ``project_then_pool`` (default): the forward applies the MLP at every location of the region
  map; ROIAlign then averages the projections inside a box: mean(MLP(x)).
- ``pool_then_project``: the forward returns the region map unchanged; the loss (query) and the
  momentum hook (keys) ROIAlign each box and apply the MLP to the pooled feature through
  :func:`region_projector`: MLP(mean(x)), the reading of the paper's text.

Both have the same parameters (a checkpoint of one loads into the other). Both are DDP-safe:
under pool_then_project the MLP's parameters are used in the loss, outside the model's forward,
which VISSL's DDP (find_unused_parameters off) reduces like any other gradient, and the loss
uses them in a batch without regions too. The two agree when the head is linear (ROIAlign and
a linear map commute) and differ once a ReLU sits between the layers."""
from typing import Callable, List, Optional

import torch
from torch import nn

from vissl_ext.config import ConfigError, did_you_mean, register_config_validator, with_defaults
from vissl_ext.registry import register_model_head

EMBEDDINGS = ("project_then_pool", "pool_then_project")
HEAD_DEFAULTS = dict(dims=None, embedding="project_then_pool")


def check_embedding(value, where: str) -> str:
    if value not in EMBEDDINGS:
        raise ConfigError(f"{where} must be one of {list(EMBEDDINGS)}, got {value!r}{did_you_mean(str(value), EMBEDDINGS)}")
    return value


@register_model_head("dense_region_head")
class DenseRegionHead(nn.Module):
    def __init__(self, model_config, dims: List[int], embedding: str = "project_then_pool"):
        super().__init__()
        if len(dims) < 2:
            raise ValueError(f"dense_region_head needs dims [in, ..., out], got {dims}")
        self.pool_first = check_embedding(embedding, "dense_region_head embedding") == "pool_then_project"
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
        return x if self.pool_first else self.mlp(x)

    def project(self, pooled: torch.Tensor) -> torch.Tensor:
        """The MLP on pooled region features [K, C] -> [K, D] (pool_then_project)."""
        return self.mlp(pooled[:, :, None, None]).flatten(1)


def region_projector(model) -> Optional[Callable[[torch.Tensor], torch.Tensor]]:
    """The region head's MLP when ``model`` (a VISSL model, not DDP-wrapped) pools before
    projecting, else None (project_then_pool, or a frame-only model)."""
    heads = getattr(model, "heads", None) or []
    head = heads[-1] if len(heads) else None
    return head.project if isinstance(head, DenseRegionHead) and head.pool_first else None


def _head_specs(params):
    """(index, kwargs) of every dense_region_head in config.MODEL.HEAD.PARAMS (flat or nested)."""
    for i, p in enumerate(params or []):
        if len(p) and isinstance(p[0], str):
            if p[0] == "dense_region_head":
                yield f"{i}", (p[1] if len(p) > 1 else {})
        else:
            for j, q in enumerate(p):
                if len(q) and q[0] == "dense_region_head":
                    yield f"{i}.{j}", (q[1] if len(q) > 1 else {})


@register_config_validator
def validate_dense_region_head(config):
    """At compose time: dense_region_head's parameters are known keys and its embedding is one of
    EMBEDDINGS (a misspelling would otherwise be a TypeError inside every worker)."""
    for idx, kwargs in _head_specs(config.MODEL.HEAD.get("PARAMS", [])):
        where = f"config.MODEL.HEAD.PARAMS.{idx}.1 (dense_region_head)"
        c = with_defaults(kwargs, HEAD_DEFAULTS, where)
        if not isinstance(c["dims"], (list, tuple)) or len(c["dims"]) < 2:
            raise ConfigError(f"{where}: dims must list at least [in, out], got {c['dims']!r}")
        check_embedding(c["embedding"], f"config.MODEL.HEAD.PARAMS.{idx}.1.embedding")
