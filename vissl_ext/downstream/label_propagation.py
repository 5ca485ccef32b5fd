"""Label propagation through a video by feature affinities: semi-supervised video object
segmentation as CRW (Jabri et al., 2020) and VFS (Xu & Wang, 2021) evaluate representations.

Each later frame takes its labels from a context of the first frame (its given labels) and the
previous ``context`` frames (their propagated labels): affinities are cosine similarities of
feature cells divided by ``temperature``, restricted to cells within ``radius`` feature cells
(max-norm, a square window as in CRW's code), the ``topk`` largest over the whole context kept
and softmax-normalised, and the labels averaged with those weights. Defaults are that protocol's:
context 20, top-k 10, temperature 0.07, radius 12.
"""
from typing import List, Tuple

import torch


def _context_frames(t: int, context: int):
    """Frame indices the labels of frame t come from: the first frame, then up to ``context``
    frames before t (the first frame only once)."""
    prev = list(range(max(1, t - context), t))
    return [0] + prev


def _tiles(h: int, w: int, radius: int, tile: int, device) -> List[Tuple]:
    """Query tiles of ``tile`` x ``tile`` cells, each with the key window every one of its cells
    can reach (the tile grown by ``radius``, clipped to the frame) and the [cells, window] mask of
    keys outside a cell's own (2 radius + 1)^2 square."""
    out = []
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            ky0, ky1, kx0, kx1 = max(0, y0 - radius), min(h, y1 + radius), max(0, x0 - radius), min(w, x1 + radius)
            qy, qx = torch.meshgrid(torch.arange(y0, y1, device=device), torch.arange(x0, x1, device=device),
                                    indexing="ij")
            ky, kx = torch.meshgrid(torch.arange(ky0, ky1, device=device), torch.arange(kx0, kx1, device=device),
                                    indexing="ij")
            outside = ((qy.reshape(-1, 1) - ky.reshape(1, -1)).abs() > radius) | \
                      ((qx.reshape(-1, 1) - kx.reshape(1, -1)).abs() > radius)
            out.append((slice(y0, y1), slice(x0, x1), slice(ky0, ky1), slice(kx0, kx1), outside))
    return out


def propagate_labels(feats: torch.Tensor, first_labels: torch.Tensor, context: int = 20, topk: int = 10,
                     temperature: float = 0.07, radius: int = 12, tile: int = 8) -> torch.Tensor:
    """``feats``: [T, C, h, w] features of the frames; ``first_labels``: [K, h, w] label
    probabilities of frame 0 at feature resolution (one channel per label, background included).
    Returns [T, K, h, w] label probabilities (frame 0's as given).

    Computed per ``tile`` x ``tile`` block of target cells against only the context cells some
    cell of the block can reach (the block grown by ``radius``), so the affinities are
    O(context x (tile + 2 radius)^2) per block and never a full frame-by-frame matrix; ``tile``
    changes the speed, and the result only by float rounding (the BLAS may sum a product in another
    order for other matrix shapes); 8 was fastest on CPU in benchmarks/bench_propagation.py."""
    if feats.dim() != 4 or first_labels.dim() != 3 or feats.shape[2:] != first_labels.shape[1:]:
        raise ValueError(f"features [T, C, h, w] and labels [K, h, w] of the same h, w expected, got "
                         f"{tuple(feats.shape)} and {tuple(first_labels.shape)}")
    if topk < 1 or temperature <= 0 or radius < 0 or context < 0 or tile < 1:
        raise ValueError(f"need topk >= 1, temperature > 0, radius >= 0, context >= 0, tile >= 1 (got {topk}, "
                         f"{temperature}, {radius}, {context}, {tile})")
    t_all, c, h, w = feats.shape
    k = first_labels.shape[0]
    # channels last, so a block's queries and a window's keys are [cells, C] matrices; written there
    # directly (no third copy of the features: at 480p, 80 frames are 2.1 GB each)
    unit = torch.empty_like(feats, dtype=torch.float32, memory_format=torch.channels_last)
    feats = torch.nn.functional.normalize(feats.float(), dim=1, out=unit).permute(0, 2, 3, 1)
    labels = [first_labels.float().permute(1, 2, 0)]  # [h, w, K] each
    tiles = _tiles(h, w, radius, tile, feats.device)
    # one buffer each for the keys and the affinities of a block, reused: a fresh [n * window, C]
    # tensor per block costs as much in page faults as the product itself on CPU
    most = (context + 1) * max(o.shape[1] for *_, o in tiles)  # keys of the largest window
    key_buf = torch.empty(most * c, device=feats.device)
    aff_buf = torch.empty(min(tile, h) * min(tile, w) * most, device=feats.device)
    for t in range(1, t_all):
        ctx = _context_frames(t, context)  # [0, t - n + 1, ..., t - 1]: the keys of frames 1.. are one slice
        ctx_labels = torch.stack([labels[i] for i in ctx])  # [n, h, w, K]
        out = torch.empty(h, w, k, device=feats.device)
        for ys, xs, kys, kxs, outside in tiles:
            q = feats[t, ys, xs].reshape(-1, c)
            window = feats[0, kys, kxs]
            keys = key_buf[:len(ctx) * window.numel()].view(len(ctx), *window.shape)  # frame-major as the mask
            keys[0].copy_(window)
            keys[1:].copy_(feats[t - len(ctx) + 1:t, kys, kxs])
            keys = keys.view(-1, c)
            aff = torch.mm(q, keys.T, out=aff_buf[:len(q) * len(keys)].view(len(q), len(keys))).div_(temperature)
            aff.view(len(q), len(ctx), -1).masked_fill_(outside[:, None], float("-inf"))
            top, idx = aff.topk(min(topk, aff.shape[1]), dim=1)
            weights = torch.softmax(top, dim=1)  # keys outside a cell's square: weight 0 (exp(-inf))
            vals = ctx_labels[:, kys, kxs].reshape(-1, k)
            out[ys, xs] = torch.einsum("qk,qkl->ql", weights, vals[idx]).view(out[ys, xs].shape)
        labels.append(out)
    return torch.stack(labels).permute(0, 3, 1, 2)
