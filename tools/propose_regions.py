#!/usr/bin/env python
"""Selective-search region proposals for every frame of a video manifest, cached per video.

    python tools/propose_regions.py /data/frames/manifest.json /data/proposals
    python tools/propose_regions.py manifest.json /data/proposals --mode quality --top-r 200
    python tools/propose_regions.py manifest.json /data/proposals --shard 1/4 --workers 8

Writes <out>/<video_id>.npz (atomic: present means finished; rerunning skips finished videos)
and <out>/summary_<shard>-of-<n>.json. Shardable with --shard i/n (or torch.distributed's
RANK/WORLD_SIZE). Frames without a proposal and unreadable frames are counted and logged.
"""
import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vissl_ext.tracking.proposals import ProposalParams  # noqa: E402
from vissl_ext.tracking.propose_cli import run  # noqa: E402


def parse_args(argv=None):
    d = ProposalParams()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", help="video manifest (tools/extract_frames.py)")
    p.add_argument("output", help="proposal cache folder")
    p.add_argument("--mode", choices=["fast", "quality", "single"], default=d.mode, help=f"selective search strategy (default {d.mode})")
    p.add_argument("--ss-short-side", type=int, default=d.ss_short_side,
                   help=f"run selective search at this short side, boxes mapped back (0: as stored; default {d.ss_short_side})")
    p.add_argument("--min-side", type=float, default=d.min_side, help=f"min box side in stored pixels (default {d.min_side})")
    p.add_argument("--max-aspect", type=float, default=d.max_aspect, help=f"max box aspect ratio (default {d.max_aspect})")
    p.add_argument("--min-size-ratio", type=float, default=d.min_size_ratio, help=f"min box area / frame area (default {d.min_size_ratio})")
    p.add_argument("--max-size-ratio", type=float, default=d.max_size_ratio, help=f"max box area / frame area (default {d.max_size_ratio})")
    p.add_argument("--nms-iou", type=float, default=d.nms_iou, help=f"NMS IoU over ranked boxes, 0: off (default {d.nms_iou})")
    p.add_argument("--top-r", type=int, default=d.top_r, help=f"keep the first R boxes per frame (default {d.top_r})")
    p.add_argument("--decoder", choices=["pyav", "opencv"], default="pyav", help="for manifests that decode videos directly")
    p.add_argument("--shard", default=None, help="i/n: every n-th video starting at i")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (one video each)")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    s = run(parse_args())
    print(json.dumps({k: v for k, v in s.items() if k != "params"}, indent=1))
    sys.exit(0)  # failed videos are counted, logged and listed in the summary
