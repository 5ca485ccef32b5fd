"""The loss of the global batch under DDP, on 2 CPU gloo processes with unequal region pair counts:
the frame and region terms and the gradients DDP leaves equal those of one process on the
concatenated batch, computed here from the formulas (no vissl_ext code); the queues hold the
rank-ordered keys on every rank."""
import pytest
import torch

from vissl_ext_ddp import LOSS_SETTINGS, TwoHeads, global_batch_case, global_batch_loss, run_ranks

CASES = [(0, 5), (3, 2), (1, 64)]


def nce(q, k, queue, t):
    """Per-query -log softmax of the positive against the queue, straight from the formula."""
    pos = (q * k).sum(1) / t
    logits = torch.cat([pos[:, None], q @ queue / t], 1)
    return torch.logsumexp(logits, 1) - pos


def reference(d, queue, region_queue, B=2):
    """Terms and gradients of one process on the concatenated batch: each term a mean over all
    the batch's queries (frame) or pairs (region)."""
    model = TwoHeads()
    f, fmap = model(d["x_f"], d["x_map"])
    frame = nce(torch.nn.functional.normalize(f, dim=1), d["key"], queue, 0.2).mean()
    pooled = []
    for r, rois in enumerate(d["rois"]):
        for b, x1, y1, x2, y2 in rois.long().tolist():
            pooled.append(fmap[r * B + b, :, y1:y2, x1:x2].mean(dim=(1, 2)))
    if pooled:
        qr = torch.nn.functional.normalize(torch.stack(pooled), dim=1)
        region = nce(qr, torch.cat(d["region_key"]), region_queue, 0.1).mean()
    else:
        region = fmap.sum() * 0
    (LOSS_SETTINGS["frame_weight"] * frame + LOSS_SETTINGS["region_weight"] * region).backward()
    return frame.item(), region.item(), {n: p.grad for n, p in model.named_parameters()}


def test_terms_and_gradients_are_those_of_the_concatenated_batch(tmp_path):
    r0, r1 = run_ranks(global_batch_loss, tmp_path, args=(CASES,))
    for i, counts in enumerate(CASES):
        d = global_batch_case(counts)
        frame, region, grads = reference(d, r0[f"queue0_{i}"], r0[f"region_queue0_{i}"])
        # VISSL reports the mean of the ranks' losses: so are the terms read
        assert (float(r0[f"frame_{i}"]) + float(r1[f"frame_{i}"])) / 2 == pytest.approx(frame, rel=1e-5)
        assert (float(r0[f"region_{i}"]) + float(r1[f"region_{i}"])) / 2 == pytest.approx(region, rel=1e-5, abs=1e-7)
        for name, want in grads.items():
            for r in (r0, r1):  # DDP's averaged gradients, the same on both ranks
                assert torch.allclose(r[f"grad_{name}_{i}"], want, rtol=1e-4, atol=1e-6), (counts, name)
        # the queues: every rank's keys in rank order, the same on both ranks
        keys, rkeys = d["key"], torch.cat(d["region_key"])
        for r in (r0, r1):
            assert torch.equal(r[f"queue_{i}"][:, : len(keys)], keys.T) and int(r[f"ptr_{i}"]) == len(keys)
            assert torch.equal(r[f"region_queue_{i}"][:, : len(rkeys)], rkeys.T)
            assert int(r[f"region_ptr_{i}"]) == len(rkeys)
        assert torch.equal(r0[f"region_queue_{i}"], r1[f"region_queue_{i}"])
