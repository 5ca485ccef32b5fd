"""Batches of region pairs (MoCo's two views plus matched boxes in the form ROI ops take), and of
shot triplets (MoCo's two views plus the view of another shot)."""
import random
from typing import Dict, List

import numpy as np
import torch

from vissl_ext.registry import register_collator


def match_views(q_ids: np.ndarray, k_ids: np.ndarray, max_pairs: int = 0):
    """Row indices (iq, ik) of the track ids present in both views, in query order; at most
    ``max_pairs`` of them (a random subset; 0: all)."""
    pos = {int(t): i for i, t in enumerate(k_ids)}
    iq = [i for i, t in enumerate(q_ids) if int(t) in pos]
    if 0 < max_pairs < len(iq):
        iq = sorted(random.sample(iq, max_pairs))
    return np.asarray(iq, np.int64), np.asarray([pos[int(q_ids[i])] for i in iq], np.int64)


def _rois(rows: List[np.ndarray]) -> torch.Tensor:
    """[K, 5] float tensor (batch index, x1, y1, x2, y2): torchvision.ops.roi_align's format."""
    parts = [np.concatenate([np.full((len(b), 1), i, np.float32), b.astype(np.float32).reshape(-1, 4)], 1) for i, b in enumerate(rows)]
    out = np.concatenate(parts, 0) if parts else np.zeros((0, 5), np.float32)
    return torch.from_numpy(out.reshape(-1, 5))


@register_collator("region_moco_collator")
def region_moco_collator(batch: List[Dict]) -> Dict[str, List[torch.Tensor]]:
    """Like VISSL's moco_collator (``data`` = queries z_i, ``data_momentum`` = keys z_{i+k}),
    plus ``region_boxes`` / ``region_boxes_momentum``: [K, 5] rois whose row m in both is one
    positive region pair (a track seen in both augmented views). Pairs whose box left either
    crop are dropped here, then each sample keeps at most its MAX_REGION_PAIRS of the survivors
    (capped after the crop, so the crop does not starve the region term); a sample with none
    still trains its frame-level pair."""
    q_imgs, k_imgs, q_rows, k_rows = [], [], [], []
    for s in batch:
        q, k = s["data"]
        iq, ik = match_views(q.ids, k.ids, q.max_pairs)
        q_imgs.append(q.img)
        k_imgs.append(k.img)
        q_rows.append(q.boxes[iq])
        k_rows.append(k.boxes[ik])
    rq, rk = _rois(q_rows), _rois(k_rows)
    return {
        "data": [torch.stack(q_imgs)],
        "data_momentum": [torch.stack(k_imgs)],
        **first_view_meta(batch),
        "region_boxes": [rq],
        "region_boxes_momentum": [rk],
    }


def first_view_meta(batch: List[Dict]) -> Dict[str, List[torch.Tensor]]:
    """label / data_valid / data_idx of each sample's first view, as VISSL's moco_collator."""

    def first(key):
        return torch.stack([torch.as_tensor(s[key][0]) for s in batch])

    return {"label": [first("label")], "data_valid": [first("data_valid")], "data_idx": [first("data_idx")]}


@register_collator("shot_moco_collator")
def shot_moco_collator(batch: List[Dict]) -> Dict[str, List[torch.Tensor]]:
    """Batches of video_shot_triplets ([z_i, z_{i+k}, z_j] as three augmented views): ``data`` =
    queries z_i, ``data_momentum`` = frame-level keys z_{i+k} (same shot), ``shot_data_momentum``
    = shot-level keys z_j (another shot of the same video); row b of each is sample b."""
    for s in batch:
        if len(s["data"]) != 3:
            raise ValueError(f"shot_moco_collator expects 3 views per sample (video_shot_triplets + VideoFramesToViews), "
                             f"got {len(s['data'])}")
    views = [torch.stack([s["data"][v] for s in batch]) for v in range(3)]
    return {"data": [views[0]], "data_momentum": [views[1]], "shot_data_momentum": [views[2]], **first_view_meta(batch)}
