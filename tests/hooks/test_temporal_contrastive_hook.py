"""TemporalContrastiveHook against hand computations: the momentum update, which encoder and
which view give each key, and the ROI scale of the region map at any input size."""
from types import SimpleNamespace

import pytest
import torch

from vissl_ext.hooks.temporal_contrastive_hook import TemporalContrastiveHook
from vissl_ext_testing import compose

M = 0.9  # not 0.5: m and 1 - m swapped must give another result


@pytest.fixture(scope="module")
def cfg():
    return compose("config=pretrain/tiny/region_tracker_cpu")


def build(cfg):
    from classy_vision.losses import build_loss
    from vissl.models import build_model

    torch.manual_seed(0)
    model = build_model(cfg.MODEL, cfg.OPTIMIZER).eval()  # eval BN: each image's output is its own
    loss = build_loss({"name": "temporal_contrastive_loss", **dict(cfg.LOSS.temporal_contrastive_loss)})
    loss.loss_config["roi_output_size"] = 2
    return SimpleNamespace(loss=loss, base_model=model, config=cfg, device=torch.device("cpu"), iteration=0)


def constant_images(values, h, w):
    """One image per value, every pixel of every channel equal to it."""
    return torch.stack([torch.full((3, h, w), float(v)) for v in values])


def run_hook(task, hook, sample, it):
    task.iteration = it
    task.last_batch = SimpleNamespace(sample=sample)
    hook.on_forward(task)


def two_steps(cfg, sample):
    """Step 0 builds the momentum encoder (a copy); the online model then moves (as an optimizer
    step would), and step 1 applies the momentum update before encoding the keys."""
    task = build(cfg)
    hook = TemporalContrastiveHook(M, shuffle_batch=False)
    run_hook(task, hook, sample, 0)
    task.loss.moco_encoder.eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in task.base_model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)
    before_k = [p.detach().clone() for p in task.loss.moco_encoder.parameters()]
    before_q = [p.detach().clone() for p in task.base_model.parameters()]
    run_hook(task, hook, sample, 1)
    return task, before_k, before_q


def sample_of(h=128, w=128, n=3):
    """Boxes of 4x4 cells of res4 on 16 px cell borders (see block_mean)."""
    rois_q = torch.tensor([[0, 16, 16, 80, 80], [2, 0, 32, 64, 96], [1, 48, 0, 112, 64]], dtype=torch.float32)
    rois_k = torch.tensor([[2, 0, 0, 64, 64], [0, 32, 16, 96, 80], [1, 64, 64, 128, 128]], dtype=torch.float32)
    return {"input": constant_images([-1.5, -0.5, 0.5][:n], h, w),
            "data_momentum": [constant_images([1.0, -1.0, 2.0][:n], h, w)],
            "region_boxes": [rois_q], "region_boxes_momentum": [rois_k]}


def block_mean(fmap, x1, y1, x2, y2):
    """Mean of map cells [y1:y2, x1:x2], unit norm: what ROIAlign with a 2x2 grid, 2 samples per
    bin and aligned=True returns for a box of 4x4 cells on cell borders."""
    v = fmap[:, y1:y2, x1:x2].mean(dim=(1, 2))
    return v / v.norm()


def test_momentum_update_equals_hand_computation(cfg):
    task, before_k, before_q = two_steps(cfg, sample_of())
    params = list(task.loss.moco_encoder.parameters())
    assert len(params) == len(before_k) > 100
    moved = 0
    for p, k, q in zip(params, before_k, before_q):
        assert torch.allclose(p, M * k + (1 - M) * q, rtol=0, atol=1e-6)
        moved += int(not torch.equal(k, q))
    assert moved == len(params)  # every parameter differed, so a no-op update cannot pass


def test_keys_come_from_the_momentum_encoder_on_the_second_view(cfg):
    sample = sample_of()
    task, _, _ = two_steps(cfg, sample)
    loss, enc, online = task.loss, task.loss.moco_encoder, task.base_model
    im_q, im_k = sample["input"], sample["data_momentum"][0]
    with torch.no_grad():
        per_image = [enc(im_k[i: i + 1]) for i in range(3)]
        want_k = torch.cat([torch.nn.functional.normalize(o[0], dim=1) for o in per_image])
        assert torch.allclose(loss.key, want_k, atol=1e-5)
        # the same check would fail for the online model, the first view, or another image
        wrong = [torch.nn.functional.normalize(online(im_k)[0], dim=1), torch.nn.functional.normalize(enc(im_q)[0], dim=1),
                 want_k.roll(1, 0)]
        for w in wrong:
            assert (loss.key - w).abs().max() > 1e-3

        # region keys: momentum boxes pooled on the momentum encoder's map of their own image
        rk = sample["region_boxes_momentum"][0]
        want_rk = torch.stack([block_mean(per_image[int(b)][1][0], int(x1) // 16, int(y1) // 16, int(x2) // 16,
                                          int(y2) // 16) for b, x1, y1, x2, y2 in rk.tolist()])
        assert torch.allclose(loss.region_key, want_rk, atol=1e-5)
        assert (loss.region_key - want_rk.roll(1, 0)).abs().max() > 1e-3

        # query regions: the loss pools the first view's boxes from the online model's map
        out = online(im_q)
        assert torch.equal(loss.query_rois, sample["region_boxes"][0])
        queue0, rqueue0 = loss.queue.clone(), loss.region_queue.clone()
        got = loss(out)
        maps = [online(im_q[i: i + 1])[1][0] for i in range(3)]
        want_qr = torch.stack([block_mean(maps[int(b)], int(x1) // 16, int(y1) // 16, int(x2) // 16, int(y2) // 16)
                               for b, x1, y1, x2, y2 in sample["region_boxes"][0].tolist()])
        q = torch.nn.functional.normalize(out[0], dim=1)
        c = loss.loss_config

        def nce(q_, k_, queue, t):
            logits = torch.cat([(q_ * k_).sum(1, keepdim=True), q_ @ queue], 1) / t
            return -torch.log_softmax(logits, 1)[:, 0].mean()

        want = (c["frame_weight"] * nce(q, want_k, queue0, c["temperature"])
                + c["region_weight"] * nce(want_qr, want_rk, rqueue0, c["region_temperature"]))
    assert got.item() == pytest.approx(want.item(), rel=1e-5)


@pytest.mark.parametrize("h,w", [(200, 200), (136, 200), (200, 120)])
def test_region_scale_is_one_over_the_stride_at_any_input_size(cfg, h, w):
    # boxes on 16 px cell borders, 4x4 cells each, inside the map of every size tested
    rois = torch.tensor([[0, 16, 32, 80, 96], [1, 48, 0, 112, 64], [0, 0, 64, 64, 128]], dtype=torch.float32)
    rois = rois[(rois[:, 3] <= w) & (rois[:, 4] <= h)]
    sample = {"input": constant_images([0.3, -0.3], h, w),
              "data_momentum": [torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(2))],
              "region_boxes": [rois], "region_boxes_momentum": [rois]}
    task = build(cfg)
    hook = TemporalContrastiveHook(M, shuffle_batch=False)
    run_hook(task, hook, sample, 0)
    assert task.loss.spatial_scale == 1 / 16
    with torch.no_grad():
        fmap = task.loss.moco_encoder(sample["data_momentum"][0])[1]
    assert fmap.shape[-2:] == (-(-h // 16), -(-w // 16))
    want = torch.stack([block_mean(fmap[int(b)], int(x1) // 16, int(y1) // 16, int(x2) // 16, int(y2) // 16)
                        for b, x1, y1, x2, y2 in rois.tolist()])
    assert torch.allclose(task.loss.region_key, want, atol=1e-5)


def test_a_map_of_another_stride_is_a_clear_error(cfg):
    cfg2 = compose("config=pretrain/tiny/region_tracker_cpu", "config.MODEL.TRUNK.REGION_FEATURE=res3",
                   "config.MODEL.HEAD.PARAMS.1.1.dims=[512,1024,128]")
    task, hook = build(cfg), TemporalContrastiveHook(M, shuffle_batch=False)
    run_hook(task, hook, sample_of(), 0)
    task.config = cfg2  # the trunk gives res4 (stride 16), the config says res3 (stride 8)
    with pytest.raises(ValueError, match=r"region map of the key view .* is \(8, 8\) .* stride 8 \(expected \(16, 16\)\)"):
        run_hook(task, hook, sample_of(), 1)
