"""Top-K Representation Invariance Score (paper section 4.1), exactly as the authors' public
``measure_invariances.py`` (github.com/senthilps8/demystifyssl) computes it, vectorised and
streaming.

Rules (each one the reference's, ties included):

* firing percentile ``p = min((1 - 1/|Y|) * 100, 95)`` with ``|Y|`` the number of classes;
  threshold index ``int(N * p // 100)``;
* per unit a positive threshold (ascending sort at that index; the global firing rate G counts
  ``x >= t+``) and a negative threshold (descending sort at that index);
* trajectories with fewer than 3 images are skipped; in a trajectory, a unit's firing count is
  ``max(#(x > t+), #(x < t-))`` (the better sign); the trajectory adds count/length to its
  class's local rate only for units whose count is > 0, and counts toward that class's number
  of trajectories only there; a trajectory's class is the class of its first image;
* per class, L/G over units sorted descending, mean of the top K; mean over classes (classes
  with no usable trajectory score 0, as in the reference); times the firing percentage
  ``100 - p``.
"""
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field, fields
from typing import Dict, List, Optional, Sequence

import numpy as np

from vissl_ext.invariance.order_stats import (ABOVE, BELOW, CHUNK_BYTES, SAMPLE_ROWS, block_stats, rows_per_chunk,
                                              sample_rows_for)
from vissl_ext.invariance.ris_errors import RISInputError, raise_not_finite
from vissl_ext.invariance.segments import make_plan

MIN_TRAJECTORY_LENGTH = 3
MAX_FIRING_PERCENTILE = 95.0
DEFAULT_TOPK = (10, 25)


@dataclass
class RISResult:
    scores: Dict[int, float]  # K -> mean over classes, percent
    per_class: Dict[str, Dict[int, float]]  # class -> K -> percent
    firing_rate_percent: float  # 100 - p: the global firing rate the thresholds aim at
    threshold_index: int
    num_images: int
    num_units: int
    num_classes: int
    num_trajectories: int
    num_trajectories_used: int
    num_short_trajectories: int  # skipped, fewer than MIN_TRAJECTORY_LENGTH images
    classes_without_trajectories: List[str] = field(default_factory=list)
    num_mixed_class_trajectories: int = 0
    num_exact_fallback_units: int = 0  # units whose threshold needed a column partition
    global_firing: Optional[np.ndarray] = None  # [D]
    thresholds: Optional[np.ndarray] = None  # [2, D]: positive, negative

    def to_dict(self) -> dict:
        """The fields of a result record: no per-unit arrays, no fallback count (a speed detail)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)
             if f.name not in ("num_exact_fallback_units", "global_firing", "thresholds")}
        d["scores"] = {str(k): float(v) for k, v in self.scores.items()}
        d["per_class"] = {c: {str(k): float(v) for k, v in ks.items()} for c, ks in self.per_class.items()}
        d["classes_without_trajectories"] = list(self.classes_without_trajectories)
        return d


def _is_tensor(x) -> bool:
    """Without importing torch: a tensor means torch is loaded."""
    return "torch" in sys.modules and isinstance(x, sys.modules["torch"].Tensor)


def _as_matrix(features, keep_tensor: bool = False):
    if _is_tensor(features):
        import torch

        features = features.detach()
        if features.dtype == torch.bfloat16:  # no numpy dtype; float32 holds every value exactly
            features = features.float()
        if not keep_tensor:
            features = features.cpu().numpy()
    elif not isinstance(features, np.ndarray):  # np.memmap is an ndarray
        features = np.asarray(features)
    if features.ndim != 2:
        raise RISInputError(f"features must be a matrix [N images, D units], got shape {tuple(features.shape)}")
    if _is_tensor(features):
        if not features.is_floating_point():
            if features.is_complex():
                raise RISInputError(f"features must be real numbers, got dtype {features.dtype}")
            features = features.double()
        return features
    if not np.issubdtype(features.dtype, np.floating):
        if not (np.issubdtype(features.dtype, np.integer) or features.dtype == bool):
            raise RISInputError(f"features must be real numbers, got dtype {features.dtype}")
        features = features.astype(np.float64)
    return features


def _check_finite(x, chunk_bytes: int, pool=None):
    """Row chunks in parallel; a chunk's sum is finite unless it holds NaN/inf (or overflows:
    then the exact test decides)."""
    step = max(1, chunk_bytes // max(1, x.shape[1] * x.dtype.itemsize))

    def check(r0):
        chunk = np.asarray(x[r0:r0 + step])
        if not np.isfinite(chunk.sum()) and not np.isfinite(chunk).all():
            return r0
        return None

    starts = range(0, x.shape[0], step)
    bad = [r0 for r0 in (pool.map(check, starts) if pool is not None else map(check, starts)) if r0 is not None]
    if bad:
        raise_not_finite(np.asarray(x[bad[0]:bad[0] + step]), bad[0])


def _labels(values, n: int, what: str) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1 or len(a) != n:
        raise RISInputError(f"{what} must be one label per image ({n}), got shape {a.shape}")
    if a.dtype.kind == "f" and np.isnan(a).any():
        raise RISInputError(f"{what}: image {int(np.flatnonzero(np.isnan(a))[0])} has no label (NaN)")
    if a.dtype == object:
        values = a.tolist()
        missing = [i for i, v in enumerate(values) if v is None or (isinstance(v, float) and v != v)]
        if missing:
            raise RISInputError(f"{what}: {len(missing)} images have no label (None/NaN), the first image {missing[0]}")
        a = a.astype(str)
        if len(set(values)) > len(np.unique(a)):  # e.g. 1 and "1": two labels, one text
            raise RISInputError(f"{what}: labels of different types have the same text (e.g. 1 and '1'); "
                                "give them all as strings or all as numbers")
    return a


def _check_options(topk, min_trajectory_length, max_firing_percentile, sample_rows, threads, block_cols):
    """Keyword values that would otherwise give empty or wrong scores (a negative block width
    scored nothing: all 0.0) or fail deep inside the selection."""
    def whole(v):
        return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

    if isinstance(topk, (str, bytes)) or not len(topk) or not all(whole(k) for k in topk):
        raise RISInputError(f"topk must be one or more integers K, got {topk!r}")
    for name, v, low in (("min_trajectory_length", min_trajectory_length, 1), ("sample_rows", sample_rows, 1),
                         ("threads", 1 if threads is None else threads, 0),
                         ("block_cols", 1 if block_cols is None else block_cols, 0)):
        if not whole(v) or v < low:
            raise RISInputError(f"{name} must be an integer >= {low}, got {v!r}")
    if not 0 < max_firing_percentile <= 100:  # NaN fails too
        raise RISInputError(f"max_firing_percentile must be in (0, 100], got {max_firing_percentile!r}")


def default_threads() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover  (not Linux)
        return max(1, os.cpu_count() or 1)


class _ClassRates:
    """Per class and unit: sum over its usable trajectories of best-sign fires / length, and the
    number of those trajectories in which the unit fires. Filled by column blocks (disjoint
    columns: safe from several threads). Trajectories of a class are added in trajectory order,
    as the plain loop does, so the sums are bitwise the same."""

    def __init__(self, lengths, used, traj_class, n_classes: int, d: int):
        ids = np.nonzero(used)[0]
        ids = ids[np.lexsort((ids, traj_class[ids]))]  # by class, then trajectory
        self.ids = ids
        self.lengths = lengths[ids].astype(np.float64)
        cls = traj_class[ids]
        self.starts = np.nonzero(np.r_[True, cls[1:] != cls[:-1]])[0]
        self.classes = cls[self.starts]
        self.per_class = np.diff(np.r_[self.starts, len(ids)])
        self.most = int(self.per_class.max()) if len(ids) else 0
        self.sum = np.zeros((n_classes, d), np.float64)
        self.cnt = np.zeros((n_classes, d), np.float64)

    def add(self, c0: int, c1: int, above, below, traj_pos=None):
        """``above`` / ``below`` [T, B]: per trajectory, fires of x > t+ / x < t- (trajectory
        axis in ``traj_pos`` order: trajectory index -> row; default the identity)."""
        rows = self.ids if traj_pos is None else traj_pos[self.ids]
        best = np.maximum(above[rows], below[rows])
        rate = best / self.lengths[:, None]
        fired = (best > 0).astype(np.float64)
        # the j-th trajectory of every class at once: sequential within a class (np.add.reduceat
        # sums in another order, so the last bits would differ from the loop's)
        for j in range(self.most):
            has = self.per_class > j
            at = self.starts[has] + j
            self.sum[self.classes[has], c0:c1] += rate[at]
            self.cnt[self.classes[has], c0:c1] += fired[at]


def _numpy_unit_stats(x, traj_of_row, n_traj, r_pos, r_neg, rates: _ClassRates, out, *, threads, chunk_bytes,
                      sample_rows, seed, block_cols, pool):
    """Column blocks in a thread pool (numpy releases the GIL in every heavy step)."""
    n, d = x.shape
    width = int(block_cols or max(64, -(-d // (2 * threads))))
    plan = make_plan(traj_of_row, n_traj, rows_per_chunk(min(width, d), x.dtype.itemsize, chunk_bytes))
    traj_pos = np.empty(n_traj, np.int64)
    traj_pos[plan.traj_ids] = np.arange(n_traj)
    sample_idx = sample_rows_for(n, sample_rows, seed)

    def block(c0):
        c1 = min(d, c0 + width)
        st = block_stats(x, slice(c0, c1), plan, [r_pos, r_neg], [ABOVE, BELOW], sample_idx)
        out["thresholds"][:, c0:c1] = st.values
        out["less"][c0:c1] = st.less[0]
        rates.add(c0, c1, st.counts[0], st.counts[1], traj_pos)
        return int(st.num_fallback.sum()) if sample_idx is not None else 0

    starts = range(0, d, width)
    return sum(pool.map(block, starts) if pool is not None else map(block, starts))


def compute_ris(features, trajectories, classes=None, topk: Sequence[int] = DEFAULT_TOPK, *,
                min_trajectory_length: int = MIN_TRAJECTORY_LENGTH,
                max_firing_percentile: float = MAX_FIRING_PERCENTILE,
                chunk_bytes: int = CHUNK_BYTES, sample_rows: int = SAMPLE_ROWS, seed: int = 0,
                keep_unit_stats: bool = False, threads: Optional[int] = None, device=None,
                block_cols: Optional[int] = None) -> RISResult:
    """Top-K RIS (percent) of ``features`` [N, D] (array, memmap or tensor) for images grouped
    into ``trajectories`` (one id per image) with ``classes`` (one label per image; default:
    class = trajectory, as for ALOI).

    numpy route (default): column blocks on ``threads`` cores (default: all this process may
    use); memory: the features (or a memmap of them) plus, per block in flight, a sample of
    ``sample_rows`` rows, a band of ~2 % of its values and uint8 per-trajectory counts.
    ``device`` ("cuda", "cuda:1", "cpu", a torch.device; default: that of a CUDA tensor given
    as features): the torch route, exact selection with ``torch.kthvalue`` on the device.
    Both give the same scores as the plain loop of the rules, bit for bit."""
    if device is None and _is_tensor(features) and features.is_cuda:
        device = features.device
    x = _as_matrix(features, keep_tensor=device is not None)
    n, d = x.shape
    if n == 0:
        raise RISInputError("no images: the feature matrix is empty")
    _check_options(topk, min_trajectory_length, max_firing_percentile, sample_rows, threads, block_cols)
    topk = [int(k) for k in topk]
    for k in topk:
        if not 1 <= k <= d:
            raise RISInputError(f"Top-K needs 1 <= K <= number of units ({d}), got K={k}")
    traj = _labels(trajectories, n, "trajectories")
    cls = traj if classes is None else _labels(classes, n, "classes")

    class_names, class_of_row = np.unique(cls, return_inverse=True)
    n_classes = len(class_names)
    if n_classes < 2:
        raise RISInputError(
            f"RIS needs at least 2 classes, got {n_classes} ({class_names[:1].tolist()}): the firing "
            "percentile (1 - 1/|Y|)*100 is 0, so every unit fires on every image. Rebuild the manifest "
            "with its classes: tools/build_ris_trajectories.py folders ROOT --csv labels.csv (columns "
            "file,trajectory,class) or folders root/<class>/<trajectory>/*.jpg; in Python, classes=None "
            "takes one class per trajectory.")
    _, first_row, traj_of_row, lengths = np.unique(traj, return_index=True, return_inverse=True, return_counts=True)
    traj_class = class_of_row[first_row]
    mixed = np.bincount(traj_of_row, weights=(class_of_row != traj_class[traj_of_row]), minlength=len(lengths)) > 0
    if mixed.any():
        logging.warning(f"RIS: {int(mixed.sum())} trajectories span several classes; each counts for the class "
                        "of its first image (as the reference implementation)")
    used = lengths >= min_trajectory_length
    if not used.any():
        raise RISInputError(f"no trajectory has {min_trajectory_length} or more images "
                            f"({len(lengths)} trajectories, longest {int(lengths.max())}): nothing to measure")
    n_short = int((~used).sum())
    if n_short:
        logging.warning(f"RIS: {n_short} of {len(lengths)} trajectories have fewer than "
                        f"{min_trajectory_length} images and are skipped")

    percentile = min((1.0 - 1.0 / n_classes) * 100, max_firing_percentile)
    index = int((n * percentile) // 100)
    r_pos, r_neg = index, n - 1 - index  # ascending ranks of t+ and t- (same index, descending)
    rates = _ClassRates(lengths, used, traj_class, n_classes, d)
    threads = int(threads or default_threads())
    if device is not None:
        from vissl_ext.invariance.ris_torch import torch_unit_stats

        out = torch_unit_stats(x, traj_of_row, len(lengths), r_pos, r_neg, rates, device=device,
                               block_cols=block_cols)
        n_fallback = 0
    else:
        out = {"thresholds": np.empty((2, d), x.dtype), "less": np.empty(d, np.int64)}
        with ThreadPoolExecutor(threads) if threads > 1 else nullcontext() as pool:
            _check_finite(x, chunk_bytes * 8, pool)
            n_fallback = _numpy_unit_stats(x, traj_of_row, len(lengths), r_pos, r_neg, rates, out, threads=threads,
                                           chunk_bytes=chunk_bytes, sample_rows=sample_rows, seed=seed,
                                           block_cols=block_cols, pool=pool)
    thresholds = out["thresholds"] + out["thresholds"].dtype.type(0)  # -0.0 -> 0.0 (equal in every comparison)
    global_firing = (n - out["less"]).astype(np.float64) / n  # mean(x >= t+)

    local = rates.sum / (rates.cnt + 1e-20)  # the reference's guard for units never firing
    score = local / global_firing[None, :]
    kmax = max(topk)
    # only the top kmax of each class are averaged: a partition, then a sort of those (the same
    # values in the same order as a full sort's first kmax, so the same sums)
    top = -np.partition(-score, kmax - 1, axis=1)[:, :kmax] if kmax < d else score
    ranked = -np.sort(-top, axis=1)
    cummean = np.cumsum(ranked, axis=1) / np.arange(1, ranked.shape[1] + 1)
    rate = 100 - percentile
    per_class_k = {k: cummean[:, k - 1] for k in topk}
    scores = {k: float(np.mean(v) * rate) for k, v in per_class_k.items()}
    names = [str(c) for c in class_names]
    per_class = {names[c]: {k: float(per_class_k[k][c] * rate) for k in topk} for c in range(n_classes)}
    has_traj = np.bincount(traj_class[used], minlength=n_classes) > 0
    empty = [names[c] for c in np.nonzero(~has_traj)[0]]
    if empty:
        logging.warning(f"RIS: {len(empty)} classes have no trajectory of {min_trajectory_length}+ images; "
                        f"they score 0 and still count in the mean (reference rule): {empty[:5]}")
    return RISResult(
        scores=scores, per_class=per_class, firing_rate_percent=rate, threshold_index=index,
        num_images=n, num_units=d, num_classes=n_classes, num_trajectories=len(lengths),
        num_trajectories_used=int(used.sum()), num_short_trajectories=n_short,
        classes_without_trajectories=empty, num_mixed_class_trajectories=int(mixed.sum()),
        num_exact_fallback_units=int(n_fallback),
        global_firing=global_firing if keep_unit_stats else None,
        thresholds=thresholds if keep_unit_stats else None,
    )
