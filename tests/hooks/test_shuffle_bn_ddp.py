"""Shuffle-BN under DDP, on 2 CPU gloo processes: after the shuffle, the boxes go to the rank that
encoded their image and only pooled keys come back; frame key row i and region key j still belong
to image i and box j, and the keys handed to the loss's queues are every rank's, in rank order."""
import torch

from vissl_ext_ddp import SHUFFLE_BN_ROIS, run_ranks, shuffle_bn_keys

CASES = [(SHUFFLE_BN_ROIS, SHUFFLE_BN_ROIS),  # equal counts
         (SHUFFLE_BN_ROIS, [[2, 0, 16, 32, 48], [0, 8, 8, 40, 40]]),  # 5 and 2
         ([], [[1, 16, 0, 48, 32], [3, 0, 0, 64, 64], [1, 32, 32, 64, 64]])]  # none on rank 0


def grouped_by_image(keys, rois):
    return keys[torch.sort(rois[:, 0], stable=True).indices]


def test_shuffle_bn_keys_stay_with_their_images(tmp_path):
    r0, r1 = run_ranks(shuffle_bn_keys, tmp_path, args=(CASES,))
    for c in range(len(CASES)):
        for r in (r0, r1):
            assert bool(r[f"distributed{c}"])
            assert torch.allclose(r[f"key{c}"], r[f"want_key{c}"], atol=1e-5)
            assert r[f"region_key{c}"].shape == r[f"want_region_key{c}"].shape
            assert torch.allclose(r[f"region_key{c}"], r[f"want_region_key{c}"], atol=1e-5)
            # the keys differ between images, so a row taken from another image would be caught
            assert (r[f"want_key{c}"] - r[f"want_key{c}"].roll(1, 0)).abs().max() > 1e-3
            # for the queues: every rank's keys in rank order (region keys grouped by image)
            assert torch.allclose(r[f"all_key{c}"], torch.cat([r0[f"want_key{c}"], r1[f"want_key{c}"]]), atol=1e-5)
            # shot keys (the shot views are the key views reversed), shuffled on their own
            assert torch.allclose(r[f"shot_key{c}"], r[f"want_key{c}"].flip(0), atol=1e-5)
            want_shot = torch.cat([r0[f"want_key{c}"].flip(0), r1[f"want_key{c}"].flip(0)])
            assert torch.allclose(r[f"all_shot_key{c}"], want_shot, atol=1e-5)
            want_all = torch.cat([grouped_by_image(x[f"want_region_key{c}"], x[f"rois{c}"]) for x in (r0, r1)])
            assert torch.allclose(r[f"all_region_key{c}"], want_all, atol=1e-5)
            assert r[f"region_counts{c}"].tolist() == [len(r0[f"rois{c}"]), len(r1[f"rois{c}"])]
        assert torch.equal(r0[f"all_region_key{c}"], r1[f"all_region_key{c}"])
        assert torch.equal(r0[f"encoder{c}"], r1[f"encoder{c}"])  # the momentum encoders stay equal
        # the batch really was shuffled across ranks: rank 0's encoder saw some of rank 1's images
        assert set(r0[f"encoded_values{c}"].tolist()) != set(r0[f"values{c}"].tolist())
        seen = sorted(r0[f"encoded_values{c}"].tolist() + r1[f"encoded_values{c}"].tolist())
        assert torch.allclose(torch.tensor(seen), torch.cat([r0[f"values{c}"], r1[f"values{c}"]]).sort().values)
    # the region keys differ between boxes: a key sent back to the wrong row would be caught
    k = r0["want_region_key0"]
    assert min((k[i] - k[j]).abs().max() for i in range(len(k)) for j in range(len(k)) if i != j) > 1e-3
