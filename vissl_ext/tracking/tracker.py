"""The Region Tracker of the paper (section 5): per video, ROI-pooled res4 features of each
frame's proposals, nearest-neighbour matching i -> i+Δ with a distance threshold (optionally
mutual), chained into tracks. Where the manifest knows the video's shots, no match links two
frames of different shots (a track ends at a cut).

Frames stream through in windows (features of only the last Δ frames are kept), so memory does
not grow with video length. No Python loop runs over regions.
"""
import logging
import time
from typing import Dict, List, Tuple

import numpy as np
import torch

from vissl_ext.video.manifest import VideoEntry
from vissl_ext.video.shots import shot_of_positions, shot_starts
from vissl_ext.video.tracks_io import Track
from vissl_ext.tracking.chaining import chain
from vissl_ext.tracking.features import RegionFeatures
from vissl_ext.tracking.frames import iter_frames
from vissl_ext.tracking.matching import NO_MATCH, match_padded, pad_features
from vissl_ext.tracking.proposals import VideoProposals
from vissl_ext.tracking.tracker_params import TrackerParams


def tracks_from_matches(succ: torch.Tensor, boxes: torch.Tensor, R: int, min_len: int) -> List[Track]:
    """Tracks (positions, boxes) from the successor array over nodes pos * R + slot."""
    tid, order = chain(succ, min_len)
    if order.numel() == 0:
        return []
    counts = torch.bincount(tid[order]).tolist()
    pos = (order // R).tolist()
    bx = boxes.reshape(-1, 4)[order].tolist()
    tracks, s = [], 0
    for i, c in enumerate(counts):  # output assembly: one step per track
        tracks.append(Track(i, pos[s: s + c], bx[s: s + c]))
        s += c
    return tracks


def track_video(entry: VideoEntry, props: VideoProposals, extractor: RegionFeatures, p: TrackerParams,
                decoder: str = "pyav", window: int = 0) -> Tuple[List[Track], Dict]:
    """Tracks of one video and counts of what was skipped (and time spent where). ``window``:
    frames read and matched per step (0: 4 trunk batches, at least Δ); the tracks do not depend on it."""
    n, R, D = entry.num_frames, p.num_regions, p.delta
    if len(props.boxes) != n:
        raise ValueError(f"proposals for '{entry.id}' cover {len(props.boxes)} frames but the manifest lists {n}: "
                         f"they were made from another manifest; rerun tools/propose_regions.py")
    boxes = [np.asarray(b, np.float32)[:R] for b in props.boxes]
    usable = [i for i in range(n) if props.readable[i] and len(boxes[i])]
    stats = {"frames": n, "unreadable": int((~props.readable).sum()),
             "frames_without_regions": int(sum(1 for i in range(n) if props.readable[i] and not len(boxes[i]))),
             "regions": int(sum(len(b) for b in boxes)), "regions_unmatched": 0, "matches": 0, "tracks": 0,
             "links_cut": 0,
             "t_read": 0.0, "t_match": 0.0, "t_chain": 0.0}
    t_fwd0, t_pool0 = extractor.timings["forward"], extractor.timings["pool"]
    if n < 2 or len(usable) < 2:
        stats["skipped"] = "one frame" if n < 2 else "fewer than two frames with regions"
        return [], stats
    dim = None
    succ = torch.full((n * R,), NO_MATCH, dtype=torch.long)
    box_t = torch.zeros(n, R, 4)
    for i in usable:
        box_t[i, : len(boxes[i])] = torch.from_numpy(boxes[i])
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    window = window or max(4 * p.batch_size, D)
    feats: Dict[int, torch.Tensor] = {}
    empty = torch.zeros(0, 1)
    usable_set = set(usable)
    shot = torch.tensor(shot_of_positions(entry.frame_indices, shot_starts(entry)))
    for s in range(0, n, window):
        e = min(s + window, n)
        want = [i for i in range(s, e) if i in usable_set]
        t0 = time.perf_counter()
        batch_imgs, batch_pos = [], []

        def flush():
            if batch_imgs:
                for pos_, f in zip(batch_pos, extractor(batch_imgs, [boxes[q] for q in batch_pos])):
                    feats[pos_] = f
                batch_imgs.clear()
                batch_pos.clear()

        for pos, img, err in iter_frames(entry, want, decoder):
            if img is None or list(img.size) != list(props.frame_size):
                if img is not None:
                    raise ValueError(f"'{entry.id}' frame {pos} is {img.size} but its proposals were made on "
                                     f"{props.frame_size}: frames were re-extracted; rerun tools/propose_regions.py")
                logging.warning(f"tracker: unreadable frame skipped: {err}")
                stats["unreadable"] += 1
                continue
            batch_imgs.append(img)
            batch_pos.append(pos)
            if len(batch_imgs) == p.batch_size:
                flush()
        flush()
        stats["t_read"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        base = max(0, s - D)
        seq = [feats.get(i, empty) for i in range(base, e)]
        dim = dim or next((f.shape[1] for f in seq if len(f)), None)
        if dim is not None and e - base > D:
            x, mask = pad_features(seq, dim)
            nn, dist = match_padded(x, mask, D, p.threshold, p.mutual)
            r = x.shape[1]
            src_pos = torch.arange(base, e - D).unsqueeze(1)
            valid_src = mask[: e - D - base]
            has_target = torch.tensor([len(f) > 0 for f in seq[D:]]).unsqueeze(1)
            matched = nn != NO_MATCH
            # never link across a shot cut: the frame i+Δ shows another scene
            cut = (shot[base: e - D] != shot[base + D: e]).unsqueeze(1)
            stats["links_cut"] += int((matched & cut).sum())
            matched = matched & ~cut
            stats["regions_unmatched"] += int((valid_src & has_target & ~matched & ~cut).sum())
            slots = torch.arange(r).unsqueeze(0).expand_as(nn)
            src = (src_pos * R + slots)[matched]
            dst = ((src_pos + D) * R + nn)[matched]
            succ[src] = dst.cpu()
            stats["matches"] += int(matched.sum())
        for i in [k for k in feats if k < e - D]:  # keep only what frames beyond e still need
            del feats[i]
        stats["t_match"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    tracks = tracks_from_matches(succ, box_t, R, p.min_track_len)
    stats["t_chain"] = time.perf_counter() - t0
    stats["tracks"] = len(tracks)
    stats["t_forward"] = extractor.timings["forward"] - t_fwd0
    stats["t_pool"] = extractor.timings["pool"] - t_pool0
    stats["t_read"] -= stats["t_forward"] + stats["t_pool"]  # reading and resizing only
    return tracks, stats
