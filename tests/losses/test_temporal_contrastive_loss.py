"""temporal_contrastive_loss against a straightforward computation; queues; gradients; state."""
import math
from types import SimpleNamespace

import pytest
import torch

from vissl_ext.losses.temporal_contrastive_loss import TemporalContrastiveLoss, pool_regions, ring_write


def make_loss(**kw):
    cfg = dict(embedding_dim=4, queue_size=6, region_embedding_dim=3, region_queue_size=5, temperature=0.2,
               region_temperature=0.1, roi_output_size=2, frame_weight=1.0, region_weight=0.5)
    cfg.update(kw)
    return TemporalContrastiveLoss(cfg)


def nce_by_hand(q, k, queue, t):
    """-log softmax of the positive, one query at a time, from the formula."""
    total = 0.0
    for i in range(q.shape[0]):
        qi = [float(x) for x in q[i]]
        pos = sum(a * b for a, b in zip(qi, k[i].tolist())) / t
        negs = [sum(a * float(queue[d, j]) for d, a in enumerate(qi)) / t for j in range(queue.shape[1])]
        m = max([pos] + negs)
        total += -(pos - m - math.log(sum(math.exp(v - m) for v in [pos] + negs)))
    return total / q.shape[0]


def unit(v):
    return v / v.norm(dim=1, keepdim=True)


def test_loss_equals_straightforward_computation():
    torch.manual_seed(0)
    loss = make_loss()
    frame_q = torch.randn(3, 4)
    region_map = torch.randn(3, 3, 8, 8)
    loss.key = unit(torch.randn(3, 4))
    # integer boxes of side 4 with a 2x2 ROIAlign grid (2 samples per bin, aligned): every sample
    # lands on a pixel centre, so the pooled feature is the plain mean of the 4x4 block
    rois = torch.tensor([[0, 0, 0, 4, 4], [2, 4, 2, 8, 6], [2, 1, 3, 5, 7]], dtype=torch.float32)
    loss.query_rois, loss.spatial_scale = rois, 1.0
    loss.region_key = unit(torch.randn(3, 3))
    queue0, rqueue0 = loss.queue.clone(), loss.region_queue.clone()
    got = loss([frame_q, region_map])

    q = unit(frame_q)
    blocks = torch.stack([region_map[int(b), :, int(y1):int(y2), int(x1):int(x2)].mean(dim=(1, 2))
                          for b, x1, y1, x2, y2 in rois.tolist()])
    qr = unit(blocks)
    want = nce_by_hand(q, loss.key, queue0, 0.2) + 0.5 * nce_by_hand(qr, loss.region_key, rqueue0, 0.1)
    assert got.item() == pytest.approx(want, rel=1e-5)
    assert loss.last_terms["regions"] == 3


def test_pool_regions_matches_block_means_with_scale():
    torch.manual_seed(1)
    fmap = torch.randn(2, 5, 6, 6)
    rois = torch.tensor([[1, 8, 8, 24, 24]], dtype=torch.float32)  # input pixels, map stride 4
    got = pool_regions(fmap, rois, 2, 0.25)
    want = unit(fmap[1, :, 2:6, 2:6].mean(dim=(1, 2))[None])
    assert torch.allclose(got, want, atol=1e-6)


def test_ring_write_matches_a_fifo():
    torch.manual_seed(2)
    Q, D = 7, 2
    queue, ptr = torch.zeros(D, Q), torch.zeros(1, dtype=torch.long)
    fifo = [None] * Q
    p = 0
    for n in [3, 0, 5, 1, 9, 2, 7]:  # varying numbers of regions per batch, some above Q
        keys = torch.randn(n, D)
        ring_write(queue, ptr, keys)
        for row in keys[-Q:] if n > Q else keys:
            fifo[p] = row
            p = (p + 1) % Q
        assert int(ptr) == p
        for j in range(Q):
            if fifo[j] is not None:
                assert torch.equal(queue[:, j], fifo[j])


def test_queues_receive_keys_in_order():
    loss = make_loss(queue_size=4)
    loss.key = unit(torch.randn(3, 4))
    loss.region_key = unit(torch.randn(2, 3))
    loss.query_rois, loss.spatial_scale = torch.tensor([[0, 0, 0, 4, 4], [1, 0, 0, 4, 4]], dtype=torch.float32), 1.0
    loss([torch.randn(3, 4), torch.randn(3, 3, 8, 8)])
    assert torch.equal(loss.queue[:, :3], loss.key.T) and int(loss.queue_ptr) == 3
    assert torch.equal(loss.region_queue[:, :2], loss.region_key.T) and int(loss.region_queue_ptr) == 2


def test_batch_without_region_pairs_trains_frame_term_alone_and_is_counted():
    torch.manual_seed(3)
    loss = make_loss()
    loss.key = unit(torch.randn(2, 4))
    loss.region_key = torch.zeros(0, 3)
    loss.query_rois, loss.spatial_scale = torch.zeros(0, 5), 1.0
    region_map = torch.randn(2, 3, 8, 8, requires_grad=True)
    frame_q = torch.randn(2, 4)
    queue0 = loss.queue.clone()
    got = loss([frame_q, region_map])
    assert got.item() == pytest.approx(nce_by_hand(unit(frame_q), loss.key, queue0, 0.2), rel=1e-5)
    assert int(loss.num_batches_without_regions) == 1 and int(loss.region_queue_ptr) == 0
    got.backward()
    assert region_map.grad is not None and float(region_map.grad.abs().sum()) == 0.0  # in the graph, no push


def test_nan_stops_naming_the_term_and_the_iteration():
    """The check runs on the loss value VISSL's train step has read (no sync of its own); only
    then are the terms read, to name the one that is not finite."""
    from vissl_ext.hooks.temporal_contrastive_hook import TemporalContrastiveHook

    loss = make_loss()
    loss.key = unit(torch.randn(2, 4))
    loss.region_key, loss.query_rois, loss.spatial_scale = torch.zeros(0, 3), torch.zeros(0, 5), 1.0
    loss.iteration = 17
    got = loss([torch.full((2, 4), float("nan")), torch.randn(2, 3, 8, 8)])
    hook = TemporalContrastiveHook(0.9, shuffle_batch=False)
    task = SimpleNamespace(loss=loss, losses=[float(got) * 2])
    with pytest.raises(FloatingPointError, match="the frame term is nan at iteration 17; stopping before the optimizer"):
        hook.on_loss_and_meter(task)
    hook.on_loss_and_meter(SimpleNamespace(loss=loss, losses=[1.5]))  # a finite step passes
    with pytest.raises(FloatingPointError, match="every term of this rank is finite: another rank's is not"):
        make_loss().raise_if_nonfinite(float("inf"))


def test_vissl_nan_check_runs_after_the_loss_check():
    from vissl.hooks import CheckNanLossHook

    from vissl_ext.hooks.temporal_contrastive_hook import TemporalContrastiveHook
    from vissl_ext.registry import hook_generator
    from vissl_ext_testing import compose

    hooks = hook_generator(compose("config=pretrain/tiny/region_tracker_cpu"))
    kinds = [type(h) for h in hooks]
    assert kinds.index(TemporalContrastiveHook) < kinds.index(CheckNanLossHook)


def test_queue_pointers_follow_a_loaded_checkpoint():
    """The pointers are mirrored on the host (no read per step): a loaded state resets the mirror."""
    loss = make_loss(queue_size=6)
    loss.moco_encoder = torch.nn.Identity()  # built: load_state_dict applies the state at once
    loss.region_key, loss.query_rois, loss.spatial_scale = torch.zeros(0, 3), torch.zeros(0, 5), 1.0
    saved = {k: v.clone() for k, v in loss.state_dict().items()}
    for _ in range(2):
        loss.key = unit(torch.randn(2, 4))
        loss([torch.randn(2, 4), torch.randn(2, 3, 8, 8)])
    assert int(loss.queue_ptr) == 4
    loss.load_state_dict(saved)  # back to pointer 0
    loss.key = unit(torch.randn(2, 4))
    loss([torch.randn(2, 4), torch.randn(2, 3, 8, 8)])
    assert int(loss.queue_ptr) == 2 and torch.equal(loss.queue[:, :2], loss.key.T)
