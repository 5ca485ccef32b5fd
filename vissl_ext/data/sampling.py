"""Which frames a sample uses: N uniformly spaced frames per video (baseline) and temporal pairs
(z_i, z_{i+k}) with i mod k = 0 (Frame Temporal Invariance).

Positions are indices into a video's frame list (the extracted frames, or every frame of a
video read directly). k counts frames on the video's regular grid: where frames are missing
from the grid (a frame folder with gaps), a pair whose partner is missing is skipped, so z_{i+k}
is always k steps of the grid after z_i.
"""
import math
from functools import reduce
from typing import List, Sequence, Tuple


def uniform_positions(num_frames: int, n: int) -> List[int]:
    """n positions spread evenly from the first to the last frame (fewer if the video is short)."""
    if n < 1:
        raise ValueError(f"frames per video must be >= 1, got {n}")
    if num_frames <= 0:
        return []
    if n == 1:
        return [num_frames // 2]
    if num_frames <= n:
        return list(range(num_frames))
    step = (num_frames - 1) / (n - 1)
    return sorted({int(round(j * step)) for j in range(n)})


def grid_step(frame_indices: Sequence[int]) -> int:
    """The spacing of the regular grid the frames lie on (gcd of the gaps)."""
    gaps = [b - a for a, b in zip(frame_indices, frame_indices[1:]) if b > a]
    return reduce(math.gcd, gaps) if gaps else 1


def pair_anchors(frame_indices: Sequence[int], k: int) -> Tuple[List[Tuple[int, int]], int]:
    """Pairs (pos_i, pos_{i+k}) with i mod k == 0 on the frames' grid.

    Returns (pairs, skipped): ``skipped`` counts anchors whose partner frame is missing (gaps).
    A video with no more than k frames on its grid yields no pair.
    """
    if k < 1:
        raise ValueError(f"pair gap k must be >= 1, got {k}")
    if not frame_indices:
        return [], 0
    step = grid_step(frame_indices)
    origin = frame_indices[0]
    pos_of = {(f - origin) // step: p for p, f in enumerate(frame_indices)}
    last = max(pos_of)
    pairs, skipped = [], 0
    for g in range(0, last - k + 1, k):
        if g not in pos_of:
            continue
        if g + k in pos_of:
            pairs.append((pos_of[g], pos_of[g + k]))
        else:
            skipped += 1
    return pairs, skipped


def partner_choices(frame_indices: Sequence[int], anchor_pos: int, k_min: int, k_max: int) -> List[int]:
    """Positions of every frame k grid steps after the anchor, k in [k_min, k_max] (random gap)."""
    step = grid_step(frame_indices)
    origin = frame_indices[0]
    g0 = (frame_indices[anchor_pos] - origin) // step
    wanted = {g0 + k for k in range(k_min, k_max + 1)}
    return [p for p, f in enumerate(frame_indices) if (f - origin) // step in wanted]


# pair scopes (config.DATA.<split>.VIDEO.PAIR_SCOPE): where a pair's second frame may come from
PAIR_SCOPES = ("shot", "video", "across_shots")


def same_shot_pairs(pairs: Sequence[Tuple[int, int]], shot_ids: Sequence[int]) -> Tuple[List[Tuple[int, int]], int]:
    """(pairs whose two frames lie in one shot, how many straddled a cut and were dropped)."""
    kept = [(a, b) for a, b in pairs if shot_ids[a] == shot_ids[b]]
    return kept, len(pairs) - len(kept)


def grid_anchors(frame_indices: Sequence[int], k: int) -> List[int]:
    """Positions of the frames z_i with i mod k == 0 on the frames' grid."""
    if not frame_indices:
        return []
    step = grid_step(frame_indices)
    origin = frame_indices[0]
    return [p for p, f in enumerate(frame_indices) if ((f - origin) // step) % k == 0]


def other_shot_positions(shot_ids: Sequence[int], pos: int) -> List[int]:
    """Positions of every frame outside the shot of ``pos`` (candidates for an across-shot z_j)."""
    s = shot_ids[pos]
    return [p for p, t in enumerate(shot_ids) if t != s]


def across_shot_pairs(frame_indices: Sequence[int], shot_ids: Sequence[int], k: int) -> List[Tuple[int, int]]:
    """(pos_i, pos_j) with z_i on the k-grid and z_j in another shot of the video: the frame at
    the same offset into the next shot (cyclic; its last frame when that shot is shorter).
    The data sources redraw z_j at random from all other shots each time a sample is read."""
    groups = {}
    for p, s in enumerate(shot_ids):
        groups.setdefault(s, []).append(p)
    order = sorted(groups)
    if len(order) < 2:
        return []
    nxt = {s: groups[order[(i + 1) % len(order)]] for i, s in enumerate(order)}
    offset = {p: i for members in groups.values() for i, p in enumerate(members)}
    out = []
    for a in grid_anchors(frame_indices, k):
        other = nxt[shot_ids[a]]
        out.append((a, other[min(offset[a], len(other) - 1)]))
    return out
