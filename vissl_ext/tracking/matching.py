"""Nearest-neighbour matching of regions between frames i and i+Δ, batched over frame pairs.

Features of a run of frames are padded into (F, R, D) with a validity mask (frames have
different numbers of regions; unreadable frames have none). For every pair (i, i+Δ) each region
of frame i takes the region of frame i+Δ at the smallest Euclidean distance (torch.cdist);
the match is dropped when the distance is above the threshold, when the mutual check is on and
the target's own nearest neighbour in frame i is another region (cycle i -> i+Δ -> i fails), or
when another region of frame i claimed the same target with a smaller distance (tracks are
chains: one successor and one predecessor per region).
"""
from typing import List, Tuple

import torch

NO_MATCH = -1


def pad_features(feats: List[torch.Tensor], dim: int = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(F, Rmax, D) zero-padded features and the (F, Rmax) validity mask."""
    rmax = max([len(f) for f in feats] + [1])
    dim = dim or next((f.shape[1] for f in feats if f.ndim == 2 and len(f)), 1)
    dev = next((f.device for f in feats if len(f)), torch.device("cpu"))
    x = torch.zeros(len(feats), rmax, dim, device=dev)
    mask = torch.zeros(len(feats), rmax, dtype=torch.bool, device=dev)
    for i, f in enumerate(feats):  # a loop over frames (copies), not over regions
        if len(f):
            x[i, : len(f)] = f
            mask[i, : len(f)] = True
    return x, mask


@torch.no_grad()
def match_padded(x: torch.Tensor, mask: torch.Tensor, delta: int, threshold: float, mutual: bool,
                 chunk: int = 64) -> Tuple[torch.Tensor, torch.Tensor]:
    """Match every region of frame i (0 <= i < F-Δ) to frame i+Δ.

    Returns (nn, dist), each (F-Δ, R): the index of the matched region in frame i+Δ
    (NO_MATCH when dropped) and the distance to the nearest neighbour (inf when frame i+Δ has
    no region or the source slot is padding).
    """
    F_, R = mask.shape
    P = max(F_ - delta, 0)
    nn_all = torch.full((P, R), NO_MATCH, dtype=torch.long, device=x.device)
    d_all = torch.full((P, R), float("inf"), device=x.device)
    for s in range(0, P, chunk):  # bounded memory: chunk * R * R distances at a time
        e = min(s + chunk, P)
        a, b = x[s:e], x[s + delta: e + delta]
        ma, mb = mask[s:e], mask[s + delta: e + delta]
        d = torch.cdist(a, b)
        d = d.masked_fill(~(ma.unsqueeze(2) & mb.unsqueeze(1)), float("inf"))
        dmin, nn = d.min(dim=2)
        ok = torch.isfinite(dmin) & (dmin <= threshold)
        if mutual:
            back = d.argmin(dim=1)  # (p, R_b): nearest region of frame i for each target
            ok &= back.gather(1, nn) == torch.arange(R, device=x.device).unsqueeze(0)
        ok &= _wins_target(nn, dmin, ok, R)
        nn_all[s:e] = torch.where(ok, nn, torch.full_like(nn, NO_MATCH))
        d_all[s:e] = dmin
    return nn_all, d_all


def _wins_target(nn: torch.Tensor, dist: torch.Tensor, ok: torch.Tensor, R: int) -> torch.Tensor:
    """Per target keep the accepted source with the smallest distance (ties: lowest index)."""
    p = nn.shape[0]
    key = (torch.arange(p, device=nn.device).unsqueeze(1) * R + nn).flatten()
    d = torch.where(ok, dist, torch.full_like(dist, float("inf"))).flatten()
    best = torch.full((p * R,), float("inf"), device=nn.device).scatter_reduce(0, key, d, "amin")
    win = ok.flatten() & (d == best[key])
    src = torch.arange(R, device=nn.device).repeat(p)
    big = torch.full((p * R,), R, dtype=torch.long, device=nn.device)
    first = big.scatter_reduce(0, key, torch.where(win, src, big), "amin")
    return (win & (first[key] == src)).view_as(ok)
