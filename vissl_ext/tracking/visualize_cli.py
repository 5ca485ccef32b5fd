"""Draw tracks on their frames so you can see what the tracker did: one PNG strip (evenly spaced
frames that carry boxes) or one animated GIF (consecutive frames) per video.

    python tools/visualize_tracks.py /data/tracks /tmp/track_pics                  # PNG strips
    python tools/visualize_tracks.py /data/tracks /tmp/track_pics --format gif --num-frames 60 --videos bag cup

Each track has its own colour and its id at the box's corner; the longest --max-tracks tracks
are drawn. Works for Region Tracker and ground-truth tracks alike.
"""
import os

from tqdm import tqdm

from vissl_ext.cli.common import add_video_flags, output_dir, parser, run_main
from vissl_ext.video.manifest import load_manifest
from vissl_ext.video.tracks_io import load_tracks_index, load_video_tracks
from vissl_ext.tracking.visualize import DrawParams, visualize_video


def parse_args(argv=None):
    d = DrawParams()
    p = parser(__doc__)
    p.add_argument("tracks", help="tracks folder or its index.json")
    p.add_argument("output", help="folder for the pictures")
    p.add_argument("--format", choices=["png", "gif"], default=d.format)
    p.add_argument("--videos", nargs="*", help="video ids (default: all in the index)")
    p.add_argument("--num-frames", type=int, default=d.num_frames, help=f"frames per strip / GIF (default {d.num_frames})")
    p.add_argument("--max-tracks", type=int, default=d.max_tracks, help=f"draw the longest N tracks (default {d.max_tracks})")
    p.add_argument("--min-len", type=int, default=d.min_len, help=f"skip tracks shorter than this (default {d.min_len})")
    p.add_argument("--columns", type=int, default=d.columns, help=f"PNG strip: frames per row (default {d.columns})")
    p.add_argument("--fps", type=float, default=d.fps, help=f"GIF frame rate (default {d.fps})")
    add_video_flags(p)
    return p.parse_args(argv)


def run(args) -> dict:
    manifest, videos, _ = load_tracks_index(args.tracks)
    entries = {e.id: e for e in load_manifest(manifest)}
    ids = args.videos or sorted(videos)
    unknown = [v for v in ids if v not in videos or v not in entries]
    if unknown:
        raise ValueError(f"videos {unknown[:5]} are not in {args.tracks} and its manifest {manifest}")
    draw = DrawParams(args.format, args.num_frames, args.max_tracks, args.min_len, args.columns, args.fps)
    output_dir(args.output)
    written = []
    for vid in tqdm(ids, desc="visualize", unit="video", disable=args.no_progress):
        doc = load_video_tracks(videos[vid], entries[vid])
        out = os.path.join(args.output, f"{vid}.{args.format}")
        if visualize_video(entries[vid], doc, out, draw, args.decoder):
            written.append(out)
    return {"written": written}


def main(argv=None) -> int:
    return run_main(parse_args, run, argv)
