"""Label propagation through a video by feature affinities: semi-supervised video object
segmentation as CRW (Jabri et al., 2020) and VFS (Xu & Wang, 2021) evaluate representations.

Each later frame takes its labels from a context of the first frame (its given labels) and the
previous ``context`` frames (their propagated labels): affinities are cosine similarities of
feature cells divided by ``temperature``, restricted to cells within ``radius`` feature cells
(max-norm, a square window as in CRW's code), the ``topk`` largest over the whole context kept
and softmax-normalised, and the labels averaged with those weights. Defaults are that protocol's:
context 20, top-k 10, temperature 0.07, radius 12.
"""
import torch


def _context_frames(t: int, context: int):
    """Frame indices the labels of frame t come from: the first frame, then up to ``context``
    frames before t (the first frame only once)."""
    prev = list(range(max(1, t - context), t))
    return [0] + prev


def propagate_labels(feats: torch.Tensor, first_labels: torch.Tensor, context: int = 20, topk: int = 10,
                     temperature: float = 0.07, radius: int = 12) -> torch.Tensor:
    """``feats``: [T, C, h, w] features of the frames; ``first_labels``: [K, h, w] label
    probabilities of frame 0 at feature resolution (one channel per label, background included).
    Returns [T, K, h, w] label probabilities (frame 0's as given).

    Computed one feature row of the target at a time against the rows of the context within the
    radius, so memory is O(context x (2 radius + 1) x w) per row, never the full affinity matrix."""
    if feats.dim() != 4 or first_labels.dim() != 3 or feats.shape[2:] != first_labels.shape[1:]:
        raise ValueError(f"features [T, C, h, w] and labels [K, h, w] of the same h, w expected, got "
                         f"{tuple(feats.shape)} and {tuple(first_labels.shape)}")
    if topk < 1 or temperature <= 0 or radius < 0 or context < 0:
        raise ValueError(f"need topk >= 1, temperature > 0, radius >= 0, context >= 0 (got {topk}, {temperature}, "
                         f"{radius}, {context})")
    t_all, _, h, w = feats.shape
    feats = torch.nn.functional.normalize(feats.float(), dim=1)
    labels = [first_labels.float()]
    xs = torch.arange(w, device=feats.device)
    for t in range(1, t_all):
        ctx = _context_frames(t, context)
        ctx_feats = feats[ctx]  # [n, C, h, w]
        ctx_labels = torch.stack([labels[i] for i in ctx])  # [n, K, h, w]
        out = torch.empty_like(first_labels, dtype=torch.float32)
        for y in range(h):
            y0, y1 = max(0, y - radius), min(h, y + radius + 1)
            q = feats[t, :, y].T  # [w, C]
            keys = ctx_feats[:, :, y0:y1].permute(0, 2, 3, 1).reshape(-1, feats.shape[1])  # [n * rows * w, C]
            vals = ctx_labels[:, :, y0:y1].permute(0, 2, 3, 1).reshape(-1, first_labels.shape[0])
            aff = q @ keys.T / temperature  # [w, n * rows * w]
            key_x = xs.repeat(len(ctx) * (y1 - y0))
            aff.masked_fill_((xs[:, None] - key_x[None, :]).abs() > radius, float("-inf"))
            top, idx = aff.topk(min(topk, aff.shape[1]), dim=1)
            weights = torch.softmax(top, dim=1)  # cells outside the window: weight 0 (exp(-inf))
            out[:, y] = torch.einsum("wk,wkl->lw", weights, vals[idx])
        labels.append(out)
    return torch.stack(labels)
