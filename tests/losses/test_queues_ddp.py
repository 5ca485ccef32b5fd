"""Queues under DDP, on 2 CPU gloo processes: with unequal region counts per rank (0 on one), the
queue content is exactly the rank-ordered concatenation of the keys, identical on every rank."""
import torch

from vissl_ext_ddp import gather_into_queues, run_ranks


def test_queues_hold_the_rank_ordered_concatenation_on_every_rank(tmp_path):
    counts = [(0, 5), (3, 2), (4, 0)]  # region pairs of rank 0 and rank 1 at each step
    r0, r1 = run_ranks(gather_into_queues, tmp_path, args=(counts,))
    frame, region = [], []
    for step in range(len(counts)):
        frame += [r0[f"key{step}"], r1[f"key{step}"]]
        region += [r0[f"region_key{step}"], r1[f"region_key{step}"]]
        want_f, want_r = torch.cat(frame), torch.cat(region)
        for r in (r0, r1):
            assert int(r[f"ptr{step}"]) == len(want_f) and int(r[f"region_ptr{step}"]) == len(want_r)
            assert torch.equal(r[f"queue{step}"][:, : len(want_f)], want_f.T)
            assert torch.equal(r[f"region_queue{step}"][:, : len(want_r)], want_r.T)
        assert torch.equal(r0[f"region_queue{step}"], r1[f"region_queue{step}"])
        assert torch.equal(r0[f"queue{step}"], r1[f"queue{step}"])
    assert len(torch.cat(region)) == 14
