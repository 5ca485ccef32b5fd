#!/usr/bin/env python
"""Region Tracker: chain selective-search regions through each video by nearest ROI-pooled res4
features of a VISSL trunk, and write tracks (vissl_ext/tracking/tracks_io.py format).

    python tools/track_regions.py manifest.json proposals/ tracks/ --checkpoint model_final_checkpoint_phase199.torch
    python tools/track_regions.py manifest.json proposals/ tracks/ --checkpoint ck.torch --device cuda \\
        --params configs/tracking/region_tracker.yaml --threshold 0.5 --no-mutual
    torchrun --nproc_per_node 8 tools/track_regions.py manifest.json proposals/ tracks/ --checkpoint ck.torch --device cuda

The trunk is built from a VISSL config (--config, default pretrain/moco_video_baseline, plus
--override config.MODEL...) and loads any VISSL checkpoint or plain trunk state dict
(--checkpoint random: random init, for smoke tests). Resumable (finished videos are skipped);
videos are sharded over torch.distributed ranks (rank 0 writes index.json) or with --shard i/n.
"""
import argparse
import json
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vissl_ext.tracking.track_cli import run  # noqa: E402
from vissl_ext.tracking.tracker import TrackerParams  # noqa: E402


def parse_args(argv=None):
    d = TrackerParams()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", help="video manifest the proposals were made from")
    p.add_argument("proposals", help="proposal cache folder (tools/propose_regions.py)")
    p.add_argument("output", help="tracks folder (index.json, videos/<id>.json)")
    p.add_argument("--checkpoint", required=True, help="VISSL checkpoint or trunk state dict ('random': random init)")
    p.add_argument("--config", default="pretrain/moco_video_baseline", help="VISSL config that builds the trunk")
    p.add_argument("--override", action="append", help="config override, e.g. config.MODEL.TRUNK.RESNETS.DEPTH=101 (repeatable)")
    p.add_argument("--params", help="YAML of tracker parameters (e.g. configs/tracking/region_tracker.yaml); flags win")
    p.add_argument("--num-regions", dest="num_regions", type=int, help=f"R: proposals per frame (default {d.num_regions})")
    p.add_argument("--delta", type=int, help=f"Δ: match frame i to i+Δ (default {d.delta})")
    p.add_argument("--threshold", type=float, help=f"max feature distance of a match, unit-norm features (default {d.threshold})")
    p.add_argument("--pool-size", dest="pool_size", type=int, help=f"ROIAlign output size (default {d.pool_size})")
    p.add_argument("--mutual", dest="mutual", action="store_true", default=None, help="keep only mutual nearest neighbours")
    p.add_argument("--no-mutual", dest="mutual", action="store_false", help=f"one-way nearest neighbours (default mutual={d.mutual})")
    p.add_argument("--min-track-len", dest="min_track_len", type=int, help=f"(default {d.min_track_len})")
    p.add_argument("--input-short-side", dest="input_short_side", type=int, help=f"trunk input short side (default {d.input_short_side})")
    p.add_argument("--batch-size", dest="batch_size", type=int, help=f"frames per forward (default {d.batch_size})")
    p.add_argument("--device", default="cpu", help="cpu | cuda | cuda:1 (under torchrun, cuda means cuda:LOCAL_RANK)")
    p.add_argument("--decoder", choices=["pyav", "opencv"], default="pyav")
    p.add_argument("--shard", default=None, help="i/n: every n-th video starting at i (without torch.distributed)")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    s = run(parse_args())
    print(json.dumps(s, indent=1))
