"""Shuffle-BN under DDP, on 2 CPU gloo processes: after shuffle and unshuffle, frame key row i and
the region keys pooled from the unshuffled map still belong to image i."""
import torch

from vissl_ext_ddp import run_ranks, shuffle_bn_keys


def test_shuffle_bn_keys_stay_with_their_images(tmp_path):
    r0, r1 = run_ranks(shuffle_bn_keys, tmp_path)
    for r in (r0, r1):
        assert bool(r["distributed"])
        assert torch.allclose(r["key"], r["want_key"], atol=1e-5)
        assert torch.allclose(r["region_key"], r["want_region_key"], atol=1e-5)
        # the keys differ between images, so a row taken from another image would be caught
        assert (r["want_key"] - r["want_key"].roll(1, 0)).abs().max() > 1e-3
    # the batch really was shuffled across ranks: rank 0's encoder saw some of rank 1's images
    assert set(r0["encoded_values"].tolist()) != set(r0["values"].tolist())
    seen = sorted(r0["encoded_values"].tolist() + r1["encoded_values"].tolist())
    assert torch.allclose(torch.tensor(seen), torch.cat([r0["values"], r1["values"]]).sort().values)
