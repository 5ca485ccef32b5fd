"""Ground-truth tracks ("Ground Truth Tracks" variant) from a tracking dataset's annotations:
a video manifest over the frames in place plus tracks in the Region Tracker's format.

    python tools/build_gt_tracks.py /data/GOT-10k/train /data/got10k_tracks --layout got10k
    python tools/build_gt_tracks.py /data/TrackingNet /data/trackingnet_tracks --layout trackingnet

Writes <out>/manifest.json and <out>/tracks/{index.json, videos/<seq>.json}; train on them with
config=pretrain/gt_tracks config.DATA.TRAIN.DATA_PATHS=[<out>/tracks]. GOT-10k frames
whose absence.label is 1 or whose cover.label is below --min-cover are left out of the track;
malformed lines are counted, logged and skipped.
"""
from vissl_ext.cli.common import parser, run_main
from vissl_ext.tracking.gt_tracks import LAYOUTS, build_gt_tracks


def parse_args(argv=None):
    p = parser(__doc__)
    p.add_argument("root", help="dataset folder (a split, a chunk, or one sequence)")
    p.add_argument("output", help="output folder (manifest.json, tracks/)")
    p.add_argument("--layout", choices=LAYOUTS, required=True)
    p.add_argument("--min-cover", type=int, default=1,
                   help="GOT-10k: keep frames with cover.label >= this (0..8; default 1: any visible part)")
    p.add_argument("--min-side", type=float, default=1.0, help="drop boxes thinner than this after clipping (px)")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def run(args) -> dict:
    return build_gt_tracks(args.root, args.layout, args.output, args.min_cover, args.min_side, not args.no_progress)


def main(argv=None) -> int:
    return run_main(parse_args, run, argv)
