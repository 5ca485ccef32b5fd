"""Exact per-column order statistics of a large row-major matrix, without sorting it.

RIS needs, for every unit (column), the value at one rank of the column's ascending order (and
at the mirrored rank). Sorting N x D floats costs two full sorts and copies; a column-wise
``np.partition`` needs a transposed copy (slow on row-major data). Instead:

1. a random sample of rows gives, per column, a bracket ``lo < answer < hi`` that holds with
   overwhelming probability;
2. one streaming pass over row chunks counts ``#(x <= lo)``, ``#(x < hi)`` and keeps the few
   values strictly inside the bracket (a ~1-3 % band);
3. the answer is picked from the sorted band. Columns where the bracket missed (bad luck, or
   ties at the bracket ends, e.g. ReLU zeros) are resolved exactly by ``np.partition`` on that
   column alone, so the result is always exact, never approximate.

Memory: one row chunk plus the band. Works on ``np.memmap`` (features larger than RAM).
"""
from typing import Dict, Sequence

import numpy as np

SAMPLE_ROWS = 8192  # bracket from this many rows; N <= this: exact partition directly
CHUNK_BYTES = 4 << 20  # row chunk size of the streaming pass


def _f32_key(v: np.ndarray) -> np.ndarray:
    """float -> uint64 key (low 32 bits) that sorts like the float32 value; -0.0 == 0.0."""
    bits = (v.astype(np.float32) + np.float32(0.0)).view(np.uint32)  # + 0.0 turns -0.0 into 0.0
    neg = (bits >> np.uint32(31)).astype(bool)
    return np.where(neg, ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)


def _f32_from_key(key: np.ndarray) -> np.ndarray:
    k = key.astype(np.uint32)
    pos = (k >> np.uint32(31)).astype(bool)
    return np.where(pos, k & np.uint32(0x7FFFFFFF), ~k).view(np.float32)


def _rows_per_chunk(n_cols: int, itemsize: int, chunk_bytes: int) -> int:
    return max(1, int(chunk_bytes // max(1, n_cols * itemsize)))


def _exact_columns(x, ranks: Sequence[int], cols: np.ndarray, chunk_bytes: int):
    """Exact values at ``ranks`` (ascending order) and ``#(x < value)`` for the given columns,
    by np.partition of each column group (transposed copy of those columns only)."""
    n = x.shape[0]
    vals = np.empty((len(ranks), len(cols)), dtype=x.dtype)
    less = np.empty((len(ranks), len(cols)), dtype=np.int64)
    group = max(1, int(chunk_bytes // max(1, n * x.dtype.itemsize)))
    for g0 in range(0, len(cols), group):
        sel = cols[g0:g0 + group]
        block = np.ascontiguousarray(np.asarray(x[:, sel]).T)  # [len(sel), n]
        part = np.partition(block, sorted(set(ranks)), axis=1)
        for ri, r in enumerate(ranks):
            v = part[:, r]
            vals[ri, g0:g0 + len(sel)] = v
            less[ri, g0:g0 + len(sel)] = np.count_nonzero(block < v[:, None], axis=1)
    return vals, less


def column_order_stats(x, ranks: Sequence[int], sample_rows: int = SAMPLE_ROWS,
                       chunk_bytes: int = CHUNK_BYTES, seed: int = 0) -> Dict[str, np.ndarray]:
    """For each rank r in ``ranks`` (0-based, ascending), per column: the value at sorted index r
    (``values[i]``, same dtype as x) and how many entries are strictly smaller (``less[i]``).

    Equals ``np.sort(x, axis=0)[r]`` exactly (ties included). ``x``: [N, D] real array or
    memmap without NaN.
    """
    n, d = x.shape
    ranks = [int(r) for r in ranks]
    for r in ranks:
        if not 0 <= r < n:
            raise ValueError(f"rank {r} outside [0, {n})")
    if n <= sample_rows:
        vals, less = _exact_columns(x, ranks, np.arange(d), chunk_bytes)
        return {"values": vals, "less": less, "num_fallback_columns": np.full(len(ranks), d)}

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=sample_rows, replace=False))
    sample = np.sort(np.asarray(x[rows]), axis=0)  # [s, d]
    s = sample_rows
    lo, hi = [], []
    for r in ranks:
        p = r / (n - 1) if n > 1 else 0.0
        centre = p * (s - 1)
        # 4.5 standard deviations of the sample rank: a miss costs only a fallback column
        margin = int(np.ceil(4.5 * np.sqrt(s * max(p * (1 - p), 1.0 / s)))) + 2
        a, b = int(np.floor(centre)) - margin, int(np.ceil(centre)) + margin
        lo.append(sample[a] if a >= 0 else np.full(d, -np.inf, dtype=x.dtype))
        hi.append(sample[b] if b < s else np.full(d, np.inf, dtype=x.dtype))
    del sample

    # streaming pass: #(x <= lo), #(x < hi) and the values strictly inside (lo, hi)
    n_le_lo = [np.zeros(d, np.int64) for _ in ranks]
    n_lt_hi = [np.zeros(d, np.int64) for _ in ranks]
    band_cols = [[] for _ in ranks]
    band_vals = [[] for _ in ranks]
    step = _rows_per_chunk(d, x.dtype.itemsize, chunk_bytes)
    for r0 in range(0, n, step):
        chunk = np.asarray(x[r0:r0 + step])
        flat = chunk.reshape(-1)
        for i in range(len(ranks)):
            gt_lo = chunk > lo[i]
            n_le_lo[i] += len(chunk) - np.count_nonzero(gt_lo, axis=0)
            lt_hi = chunk < hi[i]
            n_lt_hi[i] += np.count_nonzero(lt_hi, axis=0)
            lt_hi &= gt_lo
            where = np.flatnonzero(lt_hi)
            band_cols[i].append((where % d).astype(np.int32))
            band_vals[i].append(flat[where])

    values = np.empty((len(ranks), d), dtype=x.dtype)
    less = np.empty((len(ranks), d), dtype=np.int64)
    fallbacks = np.zeros(len(ranks), dtype=np.int64)
    for i, r in enumerate(ranks):
        cols = np.concatenate(band_cols[i]) if band_cols[i] else np.zeros(0, np.int32)
        vals = np.concatenate(band_vals[i]) if band_vals[i] else np.zeros(0, x.dtype)
        band_cols[i] = band_vals[i] = None
        per_col = np.bincount(cols, minlength=d)
        b, c = n_le_lo[i], n_lt_hi[i]
        ok = (b <= r) & (r < c)  # the answer lies strictly inside the bracket
        start = np.zeros(d + 1, np.int64)
        np.cumsum(per_col, out=start[1:])
        good = np.nonzero(ok)[0]
        if vals.dtype.itemsize <= 4:  # one uint64 sort of (column, value) keys: fast
            keys = np.sort((cols.astype(np.uint64) << np.uint64(32)) | _f32_key(vals))
            pick = keys[start[good] + (r - b[good])]
            values[i, good] = _f32_from_key(pick & np.uint64(0xFFFFFFFF))
            below = np.searchsorted(keys, pick, side="left") - start[good]
        else:
            order = np.lexsort((vals, cols))
            vals = vals[order]
            v = vals[start[good] + (r - b[good])]
            values[i, good] = v
            thr = np.full(d, np.inf)
            thr[good] = v
            below = np.bincount(cols[order], weights=(vals < thr[cols[order]]), minlength=d)[good].astype(np.int64)
        less[i, good] = b[good] + below  # all entries <= lo, and band entries below the answer
        # a run of ties spanning the bracket (lo == hi, e.g. ReLU zeros): #(x < lo) is c
        tie = ~ok & (lo[i] == hi[i]) & (c <= r) & (r < b)
        values[i, tie] = lo[i][tie]
        less[i, tie] = c[tie]
        bad = np.nonzero(~ok & ~tie)[0]
        fallbacks[i] = len(bad)
        if len(bad):
            ev, el = _exact_columns(x, [r], bad, chunk_bytes)
            values[i, bad] = ev[0]
            less[i, bad] = el[0]
    return {"values": values, "less": less, "num_fallback_columns": fallbacks}
