"""Chaining matches into tracks: i -> i+Δ -> i+2Δ ..., vectorised (pointer jumping).

Regions are nodes ``frame * R + slot``; ``succ[node]`` is the matched node in frame i+Δ or -1.
Matches are one-to-one (see matching.py), so the graph is a set of disjoint paths; every node
finds its path's head by pointer jumping (log2 of the longest track iterations), and each path
with at least ``min_len`` regions is one track.
"""
from typing import Tuple

import torch


@torch.no_grad()
def chain(succ: torch.Tensor, min_len: int = 2) -> Tuple[torch.Tensor, torch.Tensor]:
    """(track id per node, -1 outside kept tracks; node order along each track).

    Track ids are 0.. in order of their first node; the second tensor lists the nodes of all
    kept tracks grouped by track and ordered along it.
    """
    n = succ.numel()
    idx = torch.arange(n, device=succ.device)
    has = succ >= 0
    if has.any() and torch.bincount(succ[has], minlength=n).max() > 1:
        raise ValueError("chain: a region has two predecessors; matches must be one-to-one")
    pred = torch.full_like(succ, -1)
    pred[succ[has]] = idx[has]
    head = torch.where(pred >= 0, pred, idx)
    while True:  # pointer jumping: after k rounds each node points 2^k steps back (or at its head)
        nxt = head[head]
        if torch.equal(nxt, head):
            break
        head = nxt
    length = torch.bincount(head, minlength=n)
    keep = length[head] >= max(min_len, 1)
    heads = torch.unique(head[keep])  # sorted: first node order
    tid = torch.full_like(succ, -1)
    lookup = torch.full_like(succ, -1)
    lookup[heads] = torch.arange(len(heads), device=succ.device)
    tid[keep] = lookup[head[keep]]
    # node ids grow along a track (frame i+Δ > i), so sorting by (track, node) orders each track
    kept = idx[keep]
    order = kept[torch.argsort(tid[keep] * n + kept)]
    return tid, order
