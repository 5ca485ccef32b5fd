#!/usr/bin/env python
"""Extract frames from videos into a manifest that the video data sources read.

    python tools/extract_frames.py /data/videos /data/frames --stride 5 --short-side 256
    python tools/extract_frames.py videos.txt /data/frames --fps 2 --shard 0/4   # one of 4 processes
    python tools/extract_frames.py /data/videos /data/index --index-only          # read videos directly
    python tools/extract_frames.py --merge /data/frames                           # rebuild manifest.json

Resumable (finished videos are skipped), shardable (--shard i/n, or torch.distributed RANK /
WORLD_SIZE), unreadable videos counted, logged and listed in <out>/failed_<shard>.json.
"""
import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vissl_ext.data.extract_cli import run  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="*", help="video files, folders (recursive) or .txt lists of paths")
    p.add_argument("output", nargs="?", help="output folder (frames/, manifest.json)")
    p.add_argument("--stride", type=int, default=1, help="keep every N-th frame (default 1)")
    p.add_argument("--fps", type=float, default=0.0, help="sample at this frame rate instead of a stride")
    p.add_argument("--short-side", type=int, default=256, help="resize short side to this (0: keep; default 256)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    p.add_argument("--max-frames", type=int, default=0, help="at most this many frames per video (0: all)")
    p.add_argument("--decoder", choices=["pyav", "opencv"], default="pyav")
    p.add_argument("--index-only", action="store_true", help="write no frames: a manifest to decode videos directly")
    p.add_argument("--shard", default=None, help="i/n: process every n-th video starting at i")
    p.add_argument("--workers", type=int, default=1, help="parallel processes on this machine")
    p.add_argument("--merge", action="store_true", help="only rebuild <output>/manifest.json from finished videos")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.merge and args.output is None and len(args.inputs) == 1:
        args.output, args.inputs = args.inputs[0], []
    if args.output is None:
        if len(args.inputs) < 2:
            p.error("give the inputs and an output folder")
        args.output = args.inputs.pop()
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    summary = run(parse_args())
    print(json.dumps(summary, indent=1))
    sys.exit(0 if summary.get("ok", True) else 1)
