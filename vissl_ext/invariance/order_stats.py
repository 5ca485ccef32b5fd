"""Exact per-column order statistics of a large row-major matrix, and per-trajectory counts
against them, in one streaming pass and without sorting the columns.

RIS needs, for every unit (column), the value at one rank of the column's ascending order (and
at a mirrored rank), then per trajectory how many images lie above / below it. Sorting N x D
floats column-wise is slow on row-major data (every column is a strided gather); so:

1. a random sample of rows gives, per column, a bracket ``lo <= answer <= hi`` that holds with
   overwhelming probability (N <= the sample size: the exact answer, ``lo == hi``);
2. one streaming pass over row chunks (laid out trajectory by trajectory, see ``segments``)
   counts per trajectory ``#(x > lo)`` (or ``#(x < hi)``), per column the other side, and keeps
   the few values strictly inside the bracket (a ~1-2 % band);
3. the answer is picked from the band sorted as packed (column, value) uint64 keys, and the
   per-trajectory counts are corrected by the band values on the wrong side of it. A bracket
   spanning a run of ties (``lo == hi``, e.g. ReLU zeros) needs no band. Columns where the
   bracket missed are resolved exactly (``np.partition`` of those columns, then the pass again
   with ``lo == hi ==`` the answer), so results are always exact, never approximate.

Memory per column block: one row chunk, the sample, the band and the per-trajectory counts
(uint8 for trajectories up to 255 images). Works on ``np.memmap`` (features larger than RAM).
"""
import sys
from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np

from vissl_ext.invariance.segments import TrajectoryPlan, add_segment_sums

SAMPLE_ROWS = 8192  # bracket from this many rows; N <= this: exact selection directly
CHUNK_BYTES = 512 << 10  # row chunk of one column block: stays in the L2 cache
ABOVE, BELOW = "above", "below"
# bracket half-width in standard deviations of the sample rank: a miss (p ~ 3e-3 per unit and
# rank; 2 of 4096 on 72,000 x 2048 Gaussian features) costs only an exact column, a wider bracket
# costs band values in every column (4 sigmas: 8-17 % slower in bench_ris, same run)
SIGMAS = 3.0


def _f32_from_key(key: np.ndarray) -> np.ndarray:
    k = key.astype(np.uint32)
    pos = (k >> np.uint32(31)).astype(bool)
    return np.where(pos, k & np.uint32(0x7FFFFFFF), ~k).view(np.float32)


def transpose_copy(a: np.ndarray, strip: int = 64) -> np.ndarray:
    """Contiguous a.T, copied in strips of rows (4x faster than numpy's whole-array copy)."""
    out = np.empty(a.shape[::-1], a.dtype)
    for r0 in range(0, a.shape[0], strip):
        out[:, r0:r0 + strip] = a[r0:r0 + strip].T
    return out


def exact_columns(x, ranks: Sequence[int], cols) -> np.ndarray:
    """Values at ``ranks`` (ascending order) of the columns ``cols`` [len(ranks), B], by
    np.partition of a transposed copy of those columns only."""
    block = transpose_copy(np.asarray(x[:, cols]))  # [B, N]
    part = np.partition(block, sorted(set(int(r) for r in ranks)), axis=1)
    return np.stack([part[:, int(r)] for r in ranks])


@dataclass
class BlockStats:
    values: np.ndarray  # [len(ranks), B] value at each rank, dtype of x
    less: np.ndarray  # [len(ranks), B] #(x < value)
    counts: List[np.ndarray]  # per rank [T, B] per plan trajectory: #(x > value) (ABOVE) / #(x < value) (BELOW)
    num_fallback: np.ndarray  # [len(ranks)] columns resolved by the exact route


def _brackets(x, cols, ranks, sample_idx: Optional[np.ndarray]):
    """Per rank (lo, hi) [B] with lo <= answer <= hi w.h.p.; exact (lo == hi) without a sample."""
    n = x.shape[0]
    if sample_idx is None:
        v = exact_columns(x, ranks, cols)
        return v, v.copy()
    s = len(sample_idx)
    block = np.asarray(x[sample_idx, cols])
    sample = np.sort(transpose_copy(block), axis=1)  # [B, s]: rows sort fast (SIMD), columns do not
    lo, hi = [], []
    for r in ranks:
        p = r / (n - 1) if n > 1 else 0.0
        centre = p * (s - 1)
        margin = int(np.ceil(SIGMAS * np.sqrt(s * max(p * (1 - p), 1.0 / s)))) + 2
        a, b = int(np.floor(centre)) - margin, int(np.ceil(centre)) + margin
        lo.append(sample[:, a] if a >= 0 else np.full(sample.shape[0], -np.inf, dtype=x.dtype))
        hi.append(sample[:, b] if b < s else np.full(sample.shape[0], np.inf, dtype=x.dtype))
    return np.stack(lo), np.stack(hi)


def _pass(x, cols, plan: TrajectoryPlan, kinds, lo, hi):
    """One streaming pass: per rank the per-trajectory counts of one side of the bracket, the
    column count of the other side (only needed where lo == hi), and the band (lo, hi) as
    (plan row, column, value)."""
    width = lo.shape[1]
    n_traj = len(plan.lengths)
    counts = [np.zeros((n_traj, width), plan.count_dtype()) for _ in kinds]
    need_band = [bool(np.any(lo[i] < hi[i])) for i in range(len(kinds))]
    other = [np.zeros(width, np.int64) if np.any(lo[i] == hi[i]) else None for i in range(len(kinds))]
    bands = [([], [], []) for _ in kinds]
    rows = max(r1 - r0 for r0, r1, _ in plan.chunks)
    gt_buf = np.empty((rows, width), bool)
    lt_buf = np.empty((rows, width), bool)
    w32 = np.int32(width)
    # BELOW with every bracket closed (lo == hi, e.g. on a ReLU's zeros): a chunk whose minimum
    # is not below any hi has no x < hi, so a read-only min replaces a comparison
    closed_below = [kind == BELOW and not need_band[i] for i, kind in enumerate(kinds)]
    hi_max = [hi[i].max() if closed_below[i] else None for i in range(len(kinds))]
    for r0, r1, runs in plan.chunks:
        chunk = plan.rows(x, r0, r1, cols)
        gt, lt = gt_buf[:r1 - r0], lt_buf[:r1 - r0]
        chunk_min = chunk.min() if any(closed_below) else None
        for i, kind in enumerate(kinds):
            np.greater(chunk, lo[i], out=gt)
            if closed_below[i] and chunk_min >= hi_max[i]:
                other[i] += gt.view(np.uint8).sum(axis=0, dtype=np.uint8)  # <= 255 rows: fits
                continue
            np.less(chunk, hi[i], out=lt)
            seg, col = (gt, lt) if kind == ABOVE else (lt, gt)
            if np.count_nonzero(seg):  # fast (no axis); often 0 below a ReLU's zero
                add_segment_sums(seg, runs, counts[i])
            if other[i] is not None:
                other[i] += col.view(np.uint8).sum(axis=0, dtype=np.uint8)  # <= 255 rows: fits
            if need_band[i]:
                np.logical_and(gt, lt, out=gt)
                at = np.flatnonzero(gt).astype(np.int32)
                if len(at):
                    r = at // w32
                    c = at - r * w32
                    bands[i][0].append(r + np.int32(r0))
                    bands[i][1].append(c)
                    bands[i][2].append(chunk[r, c])
    out = []
    for i in range(len(kinds)):
        rows_, cols_, vals = bands[i]
        out.append((np.concatenate(rows_) if rows_ else np.zeros(0, np.int32),
                    np.concatenate(cols_) if cols_ else np.zeros(0, np.int32),
                    np.concatenate(vals) if vals else np.zeros(0, x.dtype)))
    return counts, other, out


def _f32_band_keys(col: np.ndarray, val: np.ndarray) -> np.ndarray:
    """uint64 keys (column << 32 | value key) that sort by column, then by float32 value."""
    bits = (val + np.float32(0.0)).view(np.uint32)  # + 0.0 turns -0.0 into 0.0
    sign = (bits.view(np.int32) >> np.int32(31)).view(np.uint32)  # all ones for negatives
    keys = np.empty(len(val), np.uint64)
    halves = keys.view(np.uint32).reshape(-1, 2)
    lo_word, hi_word = (0, 1) if sys.byteorder == "little" else (1, 0)
    np.bitwise_xor(bits, sign | np.uint32(0x80000000), out=halves[:, lo_word])
    halves[:, hi_word] = col
    return keys


def _resolve(plan, kind, rank, lo, hi, counts, other, band, dtype):
    """Value at ``rank`` per column from the pass; corrects ``counts`` in place for the band.
    Returns (values, less, ok) where ok marks the columns resolved."""
    n = plan.num_rows
    width = len(lo)
    total = counts.sum(axis=0, dtype=np.int64)
    row, col, val = band
    in_band = np.bincount(col, minlength=width)
    if kind == ABOVE:  # total = #(x > lo); other = #(x < hi)
        le_lo = n - total
        lt_hi = other if other is not None else le_lo + in_band
    else:  # total = #(x < hi); other = #(x > lo)
        lt_hi = total
        le_lo = n - other if other is not None else total - in_band
    values = np.empty(width, dtype)
    less = np.empty(width, np.int64)
    inside = (lo < hi) & (le_lo <= rank) & (rank < lt_hi)  # the answer lies strictly inside the bracket
    # a run of ties spanning the bracket (lo == hi, e.g. ReLU zeros): the answer is lo
    tie = (lo == hi) & (lt_hi <= rank) & (rank < le_lo)
    values[tie] = lo[tie]
    less[tie] = lt_hi[tie]
    good = np.nonzero(inside)[0]
    if len(good):
        if not inside.all():
            keep = inside[col]
            row, col, val = row[keep], col[keep], val[keep]
            in_band = np.bincount(col, minlength=width)
        start = np.zeros(width + 1, np.int64)
        np.cumsum(in_band, out=start[1:])
        pick_at = start[good] + (rank - le_lo[good])
        if val.dtype == np.float32:  # one uint64 sort of (column, value) keys: fast
            keys = _f32_band_keys(col, val)
            keys.sort()
            pick = keys[pick_at]
            values[good] = _f32_from_key(pick & np.uint64(0xFFFFFFFF))
            below = np.searchsorted(keys, pick, side="left") - start[good]
        else:
            order = np.lexsort((val, col))
            values[good] = val[order][pick_at]
            below = np.bincount(col, weights=(val < values[col]), minlength=width)[good].astype(np.int64)
        less[good] = le_lo[good] + below  # all entries <= lo, and band entries below the answer
        # band values counted on the wrong side of the answer, per trajectory
        wrong = np.nonzero(val <= values[col] if kind == ABOVE else val >= values[col])[0]
        flat = plan.row_traj[row[wrong]].astype(np.int64)
        flat *= width
        flat += col[wrong]
        if counts.size <= 4 * len(flat) + (1 << 22):
            fix = np.bincount(flat, minlength=counts.size).reshape(counts.shape)
            np.subtract(counts, fix, out=counts, casting="unsafe")
        else:
            np.subtract.at(counts.reshape(-1), flat, counts.dtype.type(1))
    return values, less, inside | tie


def block_stats(x, cols: slice, plan: TrajectoryPlan, ranks: Sequence[int], kinds: Sequence[str],
                sample_idx: Optional[np.ndarray] = None) -> BlockStats:
    """Exact values at ``ranks`` and per-trajectory counts (``kinds``: ABOVE / BELOW) of the
    columns ``cols`` (a slice) of x [N, D]."""
    lo, hi = _brackets(x, cols, ranks, sample_idx)
    counts, other, bands = _pass(x, cols, plan, kinds, lo, hi)
    width = lo.shape[1]
    values = np.empty((len(ranks), width), x.dtype)
    less = np.empty((len(ranks), width), np.int64)
    fallback = np.zeros(len(ranks), np.int64)
    col_ids = np.arange(x.shape[1])[cols]
    for i, (rank, kind) in enumerate(zip(ranks, kinds)):
        values[i], less[i], ok = _resolve(plan, kind, rank, lo[i], hi[i], counts[i], other[i], bands[i], x.dtype)
        bands[i] = None
        bad = np.nonzero(~ok)[0]
        fallback[i] = len(bad)
        if len(bad):  # exact answer, then the pass again with the bracket closed on it
            redo = _exact_stats(x, col_ids[bad], plan, rank, kind)
            values[i, bad] = redo.values[0]
            less[i, bad] = redo.less[0]
            counts[i][:, bad] = redo.counts[0]
    return BlockStats(values=values, less=less, counts=counts, num_fallback=fallback)


def _exact_stats(x, cols, plan, rank, kind) -> BlockStats:
    exact = exact_columns(x, [rank], cols)
    counts, other, bands = _pass(x, cols, plan, [kind], exact, exact)
    values, less, ok = _resolve(plan, kind, rank, exact[0], exact[0], counts[0], other[0], bands[0], x.dtype)
    assert ok.all(), "a closed bracket on the exact value always resolves"
    return BlockStats(values=values[None], less=less[None], counts=counts, num_fallback=np.zeros(1, np.int64))


def sample_rows_for(n: int, sample_rows: int, seed: int) -> Optional[np.ndarray]:
    """Sorted random rows for the brackets; None when N is small enough for exact selection."""
    if n <= sample_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=sample_rows, replace=False))


def rows_per_chunk(width: int, itemsize: int, chunk_bytes: int) -> int:
    return max(1, int(chunk_bytes // max(1, width * itemsize)))
