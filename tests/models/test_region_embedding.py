"""Which region embedding is trained: dense_region_head's ``embedding`` (project_then_pool,
mean(MLP(x)); pool_then_project, MLP(mean(x))) against straightforward computations, through
the model, hook and loss, and under DDP with every parameter reduced each step."""
from types import SimpleNamespace

import pytest
import torch

from vissl_ext.config import ConfigError
from vissl_ext.hooks.temporal_contrastive_hook import TemporalContrastiveHook
from vissl_ext.losses.temporal_contrastive_loss import pool_regions
from vissl_ext.models.region_head import DenseRegionHead, region_projector
from vissl_ext_ddp import region_embedding_grads, run_ranks
from vissl_ext_testing import compose

TINY = "config=pretrain/tiny/region_tracker_cpu"
# boxes of 4x4 map cells on cell borders at stride 4: ROIAlign (2x2 grid, 2 samples per bin,
# aligned) of such a box is the plain mean of its cells
ROIS = torch.tensor([[0, 0, 0, 16, 16], [1, 8, 4, 24, 20], [1, 16, 16, 32, 32], [0, 4, 12, 20, 28]], dtype=torch.float32)


def heads(dims, seed=0):
    """The two embeddings with the same weights."""
    torch.manual_seed(seed)
    a = DenseRegionHead(None, dims, "project_then_pool")
    b = DenseRegionHead(None, dims, "pool_then_project")
    b.load_state_dict(a.state_dict())
    return a, b


def embeddings(head, fmap):
    """What the loss and hook compute for a region head's output on fmap."""
    return pool_regions(head(fmap), ROIS, 2, 0.25, region_projector(SimpleNamespace(heads=[head])))


def block_means(fmap):
    return torch.stack([fmap[int(b), :, int(y1) // 4:int(y2) // 4, int(x1) // 4:int(x2) // 4].mean(dim=(1, 2))
                        for b, x1, y1, x2, y2 in ROIS.tolist()])


def mlp_by_hand(head, x):
    """Linear-ReLU-...-Linear from the 1x1 convolutions' weights, as matrix products."""
    convs = [m for m in head.mlp if isinstance(m, torch.nn.Conv2d)]
    for i, c in enumerate(convs):
        x = x @ c.weight.flatten(1).T + c.bias
        if i < len(convs) - 1:
            x = x.clamp(min=0)
    return x


def unit(v):
    return v / v.norm(dim=1, keepdim=True)


def test_both_embeddings_equal_straightforward_computations():
    fmap = torch.randn(2, 6, 8, 8, generator=torch.Generator().manual_seed(1))
    a, b = heads([6, 5, 3])
    with torch.no_grad():
        per_location = mlp_by_hand(a, fmap.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        assert torch.allclose(embeddings(a, fmap), unit(block_means(per_location)), atol=1e-6)  # mean(MLP(x))
        assert torch.allclose(embeddings(b, fmap), unit(mlp_by_hand(b, block_means(fmap))), atol=1e-6)  # MLP(mean(x))
    assert torch.equal(b(fmap), fmap)  # pool_then_project: the model's output is the map itself


def test_a_linear_head_gives_the_same_embeddings_and_an_mlp_does_not():
    fmap = torch.randn(2, 6, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = heads([6, 3])  # one linear map: it commutes with ROIAlign's weighted averages
        assert torch.allclose(embeddings(a, fmap), embeddings(b, fmap), atol=1e-6)
        a, b = heads([6, 5, 3])  # Linear-ReLU-Linear
        assert (embeddings(a, fmap) - embeddings(b, fmap)).abs().max() > 0.05


@pytest.mark.parametrize("override,match", [
    ("config.MODEL.HEAD.PARAMS.1.1.embedding=pool_then_projct", "did you mean `pool_then_project`"),
    ("config.MODEL.HEAD.PARAMS.1.1.embedding=mean", "must be one of"),
    ("+config.MODEL.HEAD.PARAMS.1.1.embeding=pool_then_project", "did you mean `embedding`"),
])
def test_a_wrong_embedding_fails_at_compose_time(override, match):
    with pytest.raises(ConfigError, match=match):
        compose(TINY, override)


def test_pool_then_project_through_hook_and_loss_uses_every_parameter():
    """The keys are the momentum encoder's MLP on ROIAligned res4 features, the loss applies the
    online model's MLP to the query regions, and every parameter gets a gradient, also in a
    batch without regions (DDP waits for each)."""
    from classy_vision.losses import build_loss
    from vissl.models import build_model

    cfg = compose(TINY, "config.MODEL.HEAD.PARAMS.1.1.embedding=pool_then_project")
    torch.manual_seed(0)
    model = build_model(cfg.MODEL, cfg.OPTIMIZER)
    loss = build_loss({"name": "temporal_contrastive_loss", **dict(cfg.LOSS.temporal_contrastive_loss)})
    loss.loss_config["roi_output_size"] = 1  # with boxes of 2x2 cells: samples on cell centres
    task = SimpleNamespace(loss=loss, base_model=model, config=cfg, device=torch.device("cpu"), iteration=0)
    hook = TemporalContrastiveHook(0.999, shuffle_batch=False)
    g = torch.Generator().manual_seed(3)
    rois = torch.tensor([[0, 0, 0, 32, 32], [1, 16, 16, 48, 48], [1, 32, 0, 64, 32]], dtype=torch.float32)
    for n in (3, 0):
        sample = {"input": torch.randn(2, 3, 64, 64, generator=g), "data_momentum": [torch.randn(2, 3, 64, 64, generator=g)],
                  "region_boxes": [rois[:n]], "region_boxes_momentum": [rois[:n]]}
        task.last_batch = SimpleNamespace(sample=sample)
        out = model(sample["input"])
        assert out[1].shape == (2, 1024, 4, 4)  # the res4 map, not projected
        hook.on_forward(task)
        assert loss.region_project.__self__ is model.heads[1]  # the online head, not the momentum copy
        model.zero_grad(set_to_none=True)
        loss(out).backward()
        assert [name for name, p in model.named_parameters() if p.grad is None] == []
        head_grad = sum(float(p.grad.abs().sum()) for p in model.heads[1].parameters())
        assert (head_grad > 0) == (n > 0)
        if n:
            enc = loss.moco_encoder
            with torch.no_grad():
                k_map = enc(sample["data_momentum"][0])[1]
                pooled = torch.stack([k_map[int(b), :, int(y1) // 16:int(y2) // 16, int(x1) // 16:int(x2) // 16].mean(dim=(1, 2))
                                      for b, x1, y1, x2, y2 in rois.tolist()])
                want = unit(mlp_by_hand(enc.heads[1], pooled))
            assert torch.allclose(loss.region_key, want, atol=1e-5)


def test_under_ddp_every_parameter_is_reduced_each_step(tmp_path):
    """pool_then_project (the head's parameters used in the loss) with channels_last weights."""
    r0, r1 = run_ranks(region_embedding_grads, tmp_path, args=("pool_then_project", True))
    for step in range(3):
        assert int(r0[f"missing{step}"]) == 0 and int(r1[f"missing{step}"]) == 0
        # each rank's own batch, one gradient: DDP reduced the head (used in the loss under
        # pool_then_project) and the trunk; at step 1 rank 0 has no region at all
        assert torch.allclose(r0[f"head{step}"], r1[f"head{step}"], atol=1e-6) and r0[f"head{step}"].abs().sum() > 0
        assert torch.allclose(r0[f"conv1_{step}"], r1[f"conv1_{step}"], atol=1e-6)
    assert bool(r0["conv1_channels_last"])
