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
