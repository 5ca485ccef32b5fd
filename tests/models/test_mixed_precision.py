"""Mixed precision and channels_last on CPU: the models, momentum hook and loss of
pretrain/region_tracker and pretrain/shot_temporal under bf16 autocast against fp32 on a fixed
batch; boxes and ROIAlign stay fp32; channels_last gives the same outputs. (VISSL runs AMP on
CUDA only, with torch.cuda.amp; the CPU's bf16 autocast exercises the same code paths here.)"""
from types import SimpleNamespace

import pytest
import torch

from vissl_ext.hooks.temporal_contrastive_hook import TemporalContrastiveHook
from vissl_ext.losses.temporal_contrastive_loss import pool_regions
from vissl_ext_testing import compose

# the stated tolerance (docs/mixed_precision.md): each term of the loss under bf16 autocast within
# 5% of fp32 on this batch (measured on these ResNet-50s: 0.3-1.5% for region_tracker's terms,
# about 3% for shot_temporal's; bf16 keeps 8 bits of mantissa and the logits are scaled by 1/T = 5)
REL_TOL = 0.05


def build(config, *overrides):
    from classy_vision.losses import build_loss
    from vissl.models import build_model

    cfg = compose(config, *overrides)
    torch.manual_seed(0)
    model = build_model(cfg.MODEL, cfg.OPTIMIZER)
    return cfg, model, lambda: build_loss({"name": "temporal_contrastive_loss", **dict(cfg.LOSS.temporal_contrastive_loss)})


def fixed_batch(kind):
    g = torch.Generator().manual_seed(0)
    x = [torch.randn(4, 3, 64, 64, generator=g) for _ in range(3)]
    sample = {"input": x[0], "data_momentum": [x[1]]}
    if kind == "region":
        rois = torch.tensor([[0, 4, 4, 36, 36], [1, 16, 8, 60, 40], [2, 0, 0, 64, 64], [3, 10, 20, 50, 62]],
                            dtype=torch.float32)
        sample.update(region_boxes=[rois], region_boxes_momentum=[rois + torch.tensor([0.0, 1, 1, 1, 1])])
    else:
        sample["shot_data_momentum"] = [x[2]]
    return sample


def one_step(cfg, model, new_loss, sample, bf16):
    """Forward, momentum hook, loss and backward, as VISSL's train step orders them; a fresh loss
    and hook each time (same initial queues, momentum encoder copied from the same model)."""
    loss = new_loss()
    task = SimpleNamespace(loss=loss, base_model=model, config=cfg, device=torch.device("cpu"), iteration=0,
                           last_batch=SimpleNamespace(sample=sample))
    hook = TemporalContrastiveHook(0.999, shuffle_batch=False)
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(sample["input"])
        out = out[0] if len(out) == 1 else out  # as VISSL's train step
        hook.on_forward(task)
        total = loss(out)
    total.backward()
    outs = out if isinstance(out, (list, tuple)) else [out]
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    return total, dict(loss.last_terms), [o.dtype for o in outs], grads


@pytest.mark.parametrize("config,kind,terms", [
    ("config=pretrain/tiny/region_tracker_cpu", "region", ("frame", "region")),
    ("config=pretrain/tiny/shot_temporal_cpu", "shot", ("frame", "shot")),
])
def test_bf16_autocast_step_is_finite_and_close_to_fp32(config, kind, terms):
    cfg, model, new_loss = build(config)
    model.eval()  # BN from running statistics: both precisions see the same normalisation
    sample = fixed_batch(kind)
    ref, ref_terms, ref_dtypes, _ = one_step(cfg, model, new_loss, sample, bf16=False)
    got, got_terms, dtypes, grads = one_step(cfg, model, new_loss, sample, bf16=True)
    assert set(ref_dtypes) == {torch.float32} and set(dtypes) == {torch.bfloat16}  # autocast did run
    assert torch.isfinite(got) and all(torch.isfinite(g).all() for g in grads) and len(grads) > 100
    for t in terms:
        assert got_terms[t] == pytest.approx(ref_terms[t], rel=REL_TOL), t
    assert got.item() != ref.item()  # bf16 did change the numbers: the tolerance is doing work


def test_boxes_and_roialign_stay_fp32_under_autocast():
    """Coordinates above 128 px: bf16 keeps 1 px of them (fp16 0.125 px), ROIAlign must not see that."""
    fmap = torch.randn(2, 8, 20, 20, generator=torch.Generator().manual_seed(1)).bfloat16()
    rois = torch.tensor([[0, 130.3, 141.7, 250.6, 301.2], [1, 17.25, 200.5, 199.9, 310.1]])
    want = pool_regions(fmap.float(), rois, 3, 1 / 16)  # fp32 throughout, on the same (bf16) map values
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = pool_regions(fmap, rois, 3, 1 / 16)
    assert got.dtype == torch.float32 and torch.allclose(got, want, rtol=0, atol=1e-6)
    rounded = pool_regions(fmap.float(), rois.bfloat16().float(), 3, 1 / 16)  # what casting the boxes did
    assert (rounded - want).abs().max() > 1e-3


def test_channels_last_gives_the_same_outputs():
    cfg, model, _ = build("config=pretrain/tiny/region_tracker_cpu")
    _, model_cl, _ = build("config=pretrain/tiny/region_tracker_cpu", "config.MODEL.TRUNK.CHANNELS_LAST=true")
    model_cl.load_state_dict(model.state_dict())
    conv = model_cl.trunk._feature_blocks.layer3[0].conv2.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = model.eval()(x), model_cl.eval()(x)
    assert b[1].is_contiguous(memory_format=torch.channels_last) and not b[1].is_contiguous()
    for u, v in zip(a, b):
        assert torch.allclose(u, v, rtol=1e-4, atol=1e-5)
