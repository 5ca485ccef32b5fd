"""J (region similarity) and F (boundary F-measure) as the DAVIS 2017 evaluation defines them
(davis2017-evaluation, ``metrics.py`` and ``evaluation.py``; Perazzi et al., CVPR 2016).

- J: intersection over union of two binary masks; 1 where both are empty.
- F: precision and recall of the two masks' boundaries, a boundary pixel matching when the other
  boundary lies within ``ceil(0.008 * image diagonal)`` pixels (a disk); F = 2PR / (P + R), with
  P = 1, R = 0 when only the prediction has no boundary, P = 0, R = 1 when only the ground truth
  has none, and F = 1 when neither has.
- Per sequence and object, the frames between the first (given) and the last are scored, as the
  DAVIS 2017 evaluation does; J&F-Mean = (J-Mean + F-Mean) / 2, means over every object of
  every sequence.
"""
import math
from typing import Dict, List, Sequence

import numpy as np

BOUND_TH = 0.008  # the DAVIS evaluation's tolerance: this fraction of the image diagonal


def jaccard(gt: np.ndarray, pred: np.ndarray) -> float:
    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    if gt.shape != pred.shape:
        raise ValueError(f"masks of different shapes: ground truth {gt.shape}, prediction {pred.shape}")
    union = np.count_nonzero(gt | pred)
    return 1.0 if union == 0 else np.count_nonzero(gt & pred) / union


def boundary_map(mask: np.ndarray) -> np.ndarray:
    """Pixels whose right, lower or lower-right neighbour differs (the DAVIS ``seg2bmap`` at the
    mask's own size): a one-pixel boundary on the object's side."""
    seg = np.asarray(mask, bool)
    e, s, se = np.zeros_like(seg), np.zeros_like(seg), np.zeros_like(seg)
    e[:, :-1], s[:-1, :], se[:-1, :-1] = seg[:, 1:], seg[1:, :], seg[1:, 1:]
    b = (seg ^ e) | (seg ^ s) | (seg ^ se)
    b[-1, :] = seg[-1, :] ^ e[-1, :]
    b[:, -1] = seg[:, -1] ^ s[:, -1]
    b[-1, -1] = False
    return b


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    return (r[:, None] ** 2 + r[None, :] ** 2 <= radius ** 2).astype(np.uint8)


def boundary_f(gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH) -> float:
    import cv2

    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    if gt.shape != pred.shape:
        raise ValueError(f"masks of different shapes: ground truth {gt.shape}, prediction {pred.shape}")
    radius = int(bound_th if bound_th >= 1 else math.ceil(bound_th * math.hypot(*gt.shape)))
    fg_b, gt_b = boundary_map(pred), boundary_map(gt)
    kernel = _disk(radius)
    fg_dil = cv2.dilate(fg_b.astype(np.uint8), kernel).astype(bool)
    gt_dil = cv2.dilate(gt_b.astype(np.uint8), kernel).astype(bool)
    n_fg, n_gt = np.count_nonzero(fg_b), np.count_nonzero(gt_b)
    if n_fg == 0 and n_gt == 0:
        return 1.0
    if n_fg == 0:
        precision, recall = 1.0, 0.0
    elif n_gt == 0:
        precision, recall = 0.0, 1.0
    else:
        precision = np.count_nonzero(fg_b & gt_dil) / n_fg
        recall = np.count_nonzero(gt_b & fg_dil) / n_gt
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def score_sequence(gt_labels: Sequence[np.ndarray], pred_labels: Sequence[np.ndarray],
                   objects: Sequence[int] = None) -> Dict[int, Dict[str, List[float]]]:
    """Per object id (> 0): its J and F in each frame between the first and the last. Label maps
    are integer arrays (0 background); ``objects`` default to the ids of the first ground truth."""
    if len(gt_labels) != len(pred_labels):
        raise ValueError(f"{len(gt_labels)} ground-truth frames but {len(pred_labels)} predicted")
    if objects is None:
        objects = sorted(int(o) for o in np.unique(gt_labels[0]) if o != 0)
    frames = range(1, len(gt_labels) - 1)
    return {o: {"J": [jaccard(gt_labels[t] == o, pred_labels[t] == o) for t in frames],
                "F": [boundary_f(gt_labels[t] == o, pred_labels[t] == o) for t in frames]} for o in objects}


def summarise(per_sequence: Dict[str, Dict[int, Dict[str, List[float]]]]) -> dict:
    """J-Mean, F-Mean and J&F-Mean over every object of every sequence (each object's mean over
    its frames first), and the per-sequence means. Objects with no scored frame (a sequence of
    fewer than 3 frames: DAVIS scores none but those between the first and the last) count in
    neither; where nothing is scored the means are None, never NaN."""
    objs = [(seq, o, float(np.mean(v["J"])), float(np.mean(v["F"])))
            for seq, by_obj in per_sequence.items() for o, v in by_obj.items() if v["J"]]
    mean = lambda xs: float(np.mean(xs)) if xs else None  # noqa: E731
    j, f = mean([x[2] for x in objs]), mean([x[3] for x in objs])
    seqs = {seq: {"J": mean([x[2] for x in objs if x[0] == seq]), "F": mean([x[3] for x in objs if x[0] == seq])}
            for seq in per_sequence if any(x[0] == seq for x in objs)}
    return {"J_mean": j, "F_mean": f, "JF_mean": None if j is None else (j + f) / 2, "objects": len(objs),
            "sequences": seqs}
