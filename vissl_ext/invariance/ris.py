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
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import numpy as np

from vissl_ext.invariance.order_stats import CHUNK_BYTES, SAMPLE_ROWS, column_order_stats

MIN_TRAJECTORY_LENGTH = 3
MAX_FIRING_PERCENTILE = 95.0
DEFAULT_TOPK = (10, 25)


class RISInputError(ValueError):
    """Features, trajectories or classes that cannot give a meaningful score."""


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
        return {
            "scores": {str(k): float(v) for k, v in self.scores.items()},
            "per_class": {c: {str(k): float(v) for k, v in d.items()} for c, d in self.per_class.items()},
            "firing_rate_percent": self.firing_rate_percent,
            "threshold_index": self.threshold_index,
            "num_images": self.num_images,
            "num_units": self.num_units,
            "num_classes": self.num_classes,
            "num_trajectories": self.num_trajectories,
            "num_trajectories_used": self.num_trajectories_used,
            "num_short_trajectories": self.num_short_trajectories,
            "classes_without_trajectories": list(self.classes_without_trajectories),
            "num_mixed_class_trajectories": self.num_mixed_class_trajectories,
        }


def _as_matrix(features):
    try:
        import torch

        if isinstance(features, torch.Tensor):
            features = features.detach().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    if not isinstance(features, np.ndarray):  # np.memmap is an ndarray
        features = np.asarray(features)
    if features.ndim != 2:
        raise RISInputError(f"features must be a matrix [N images, D units], got shape {features.shape}")
    if not np.issubdtype(features.dtype, np.floating):
        if not (np.issubdtype(features.dtype, np.integer) or features.dtype == bool):
            raise RISInputError(f"features must be real numbers, got dtype {features.dtype}")
        features = features.astype(np.float64)
    return features


def _check_finite(x, chunk_bytes: int):
    step = max(1, chunk_bytes // max(1, x.shape[1] * x.dtype.itemsize))
    for r0 in range(0, x.shape[0], step):
        chunk = np.asarray(x[r0:r0 + step])
        if not np.isfinite(chunk).all():
            r, c = np.argwhere(~np.isfinite(chunk))[0]
            raise RISInputError(
                f"features contain NaN or inf (first at image {r0 + r}, unit {c}: {chunk[r, c]}); "
                "RIS thresholds are undefined. Check the model output / the feature file.")


def _labels(values, n: int, what: str) -> np.ndarray:
    a = np.asarray(values)
    if a.ndim != 1 or len(a) != n:
        raise RISInputError(f"{what} must be one label per image ({n}), got shape {a.shape}")
    if a.dtype == object:
        a = a.astype(str)
    return a


def _local_firing(x, pos_thr, neg_thr, traj_rows, lengths, used, traj_class, n_classes, chunk_bytes):
    """Per class: sum over its usable trajectories of (best-sign fires / length), and number of
    trajectories in which each unit fires. Trajectories are processed in groups of equal
    length, so per-trajectory counts are reshape-sums (no loop over trajectories or units)."""
    d = x.shape[1]
    class_sum = np.zeros((n_classes, d), dtype=np.float64)
    class_cnt = np.zeros((n_classes, d), dtype=np.float64)
    row_bytes = d * x.dtype.itemsize
    starts = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=starts[1:])
    for length in np.unique(lengths[used]):
        group = np.nonzero(used & (lengths == length))[0]  # sorted trajectory ids
        if length * row_bytes <= chunk_bytes:
            t_step, l_step = max(1, int(chunk_bytes // (length * row_bytes))), int(length)
        else:  # very long trajectories: one at a time, in row slices
            t_step, l_step = 1, max(1, int(chunk_bytes // row_bytes))
        for t0 in range(0, len(group), t_step):
            trajs = group[t0:t0 + t_step]
            rows = traj_rows[starts[trajs][:, None] + np.arange(length)]  # [t, L] image indices
            pos = np.zeros((len(trajs), d), np.int64)
            neg = np.zeros((len(trajs), d), np.int64)
            for l0 in range(0, int(length), l_step):
                sub = rows[:, l0:l0 + l_step]
                block = np.asarray(x[sub.ravel()]).reshape(len(trajs), sub.shape[1], d)
                pos += np.count_nonzero(block > pos_thr, axis=1)
                neg += np.count_nonzero(block < neg_thr, axis=1)
            best = np.maximum(pos, neg)
            np.add.at(class_sum, traj_class[trajs], best / float(length))
            np.add.at(class_cnt, traj_class[trajs], (best > 0).astype(np.float64))
    return class_sum, class_cnt


def compute_ris(features, trajectories, classes=None, topk: Sequence[int] = DEFAULT_TOPK, *,
                min_trajectory_length: int = MIN_TRAJECTORY_LENGTH,
                max_firing_percentile: float = MAX_FIRING_PERCENTILE,
                chunk_bytes: int = CHUNK_BYTES, sample_rows: int = SAMPLE_ROWS, seed: int = 0,
                keep_unit_stats: bool = False) -> RISResult:
    """Top-K RIS (percent) of ``features`` [N, D] (array, memmap or tensor) for images grouped
    into ``trajectories`` (one id per image) with ``classes`` (one label per image; default:
    class = trajectory, as for ALOI). Memory: the features (or a memmap of them) plus one
    chunk of ``chunk_bytes`` and a thin band of values for the thresholds."""
    x = _as_matrix(features)
    n, d = x.shape
    if n == 0:
        raise RISInputError("no images: the feature matrix is empty")
    topk = [int(k) for k in topk]
    for k in topk:
        if not 1 <= k <= d:
            raise RISInputError(f"Top-K needs 1 <= K <= number of units ({d}), got K={k}")
    _check_finite(x, chunk_bytes)
    traj = _labels(trajectories, n, "trajectories")
    cls = traj if classes is None else _labels(classes, n, "classes")

    class_names, class_of_row = np.unique(cls, return_inverse=True)
    n_classes = len(class_names)
    if n_classes < 2:
        raise RISInputError(
            f"RIS needs at least 2 classes, got {n_classes} ({class_names[:1].tolist()}): the firing "
            "percentile (1 - 1/|Y|)*100 is 0, so every unit fires on every image. Give the real "
            "classes, or leave classes out to use one class per trajectory.")
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
    stats = column_order_stats(x, [index, n - 1 - index], sample_rows=sample_rows, chunk_bytes=chunk_bytes, seed=seed)
    pos_thr, neg_thr = stats["values"][0], stats["values"][1]
    global_firing = (n - stats["less"][0]).astype(np.float64) / n  # mean(x >= t+)

    traj_rows = np.argsort(traj_of_row, kind="stable")  # images grouped by trajectory, in order
    class_sum, class_cnt = _local_firing(x, pos_thr, neg_thr, traj_rows, lengths, used, traj_class,
                                         n_classes, chunk_bytes)
    local = class_sum / (class_cnt + 1e-20)  # the reference's guard for units never firing
    score = local / global_firing[None, :]
    ranked = -np.sort(-score, axis=1)
    cummean = np.cumsum(ranked, axis=1) / np.arange(1, d + 1)
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
        num_exact_fallback_units=int(stats["num_fallback_columns"].sum()),
        global_firing=global_firing if keep_unit_stats else None,
        thresholds=np.stack([pos_thr, neg_thr]) if keep_unit_stats else None,
    )
