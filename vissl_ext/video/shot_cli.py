"""Detect shot boundaries (PySceneDetect) for the videos of an existing manifest.

    python tools/detect_shots.py /data/frames/manifest.json                     # in place
    python tools/detect_shots.py /data/frames/manifest.json --shard 0/4         # one of 4 processes
    python tools/detect_shots.py manifest.json --detector adaptive --threshold 3 --output shots.json
    python tools/detect_shots.py /data/frames/manifest.json --merge             # rebuild the manifest only
    python tools/detect_shots.py /data/frames/manifest.json --slurm --slurm-shards 16 --partition learnfair

Each video's source is decoded again (every frame); where it is gone, the stored frames are
read. Per video the result goes to ``<manifest folder>/shots/<video id>.json`` (atomic), so a stopped
run resumes where it stopped, shards (``--shard i/n`` or RANK/WORLD_SIZE) split the videos, and
each run rewrites the manifest (atomic) with the shots of every finished video: whichever shard
finishes last leaves the complete manifest (``--merge`` rebuilds it alone). Videos whose
detection fails are counted, logged and listed in ``failed_shots_<i>-of-<n>.json``.
"""
import logging
import os
import sys


from vissl_ext.cli.common import map_jobs, parse_shard, parser, run_main, shard_of
from vissl_ext.video.manifest import load_manifest, save_manifest
from vissl_ext.video.extraction import detect_entry_shots
from vissl_ext.video.shots import (ShotParams, add_shot_args, load_cached_shots, same_params, save_shots,
                                  shots_record)
from vissl_ext.video.video_io import VideoDecodeError
from vissl_ext.cli.shard_jobs import add_slurm_args, submit_and_merge
from vissl_ext.utils.atomic_io import write_json_atomic


def parse_args(argv=None):
    p = parser(__doc__)
    p.add_argument("manifest", help="manifest.json from tools/extract_frames.py")
    p.add_argument("--output", default=None, help="write the manifest with shots here (default: in place); the "
                                                  "per-video results go to shots/ beside it")
    add_shot_args(p)
    p.add_argument("--decoder", choices=["pyav", "opencv"], default="pyav", help="for videos read directly")
    p.add_argument("--shard", default=None, help="i/n: process every n-th video starting at i")
    p.add_argument("--workers", type=int, default=1, help="parallel processes on this machine")
    p.add_argument("--force", action="store_true", help="detect again even where results with these settings exist")
    p.add_argument("--merge", action="store_true", help="only rewrite the manifest from the finished results")
    p.add_argument("--no-progress", action="store_true")
    add_slurm_args(p)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv=None) -> int:
    return run_main(parse_args, run, argv)


def _detect_one(job):
    entry, folder, params, decoder = job
    try:
        starts, read = detect_entry_shots(entry, params, decoder)
        save_shots(folder, entry.id, shots_record(starts, params, read))
        return entry.id, None
    except (VideoDecodeError, OSError) as e:
        return entry.id, f"{entry.id}: {e}"


def merge_shots(manifest: str, output: str, params: ShotParams) -> dict:
    """Rewrite the manifest with the cached shots made with ``params`` (others are left as they are)."""
    folder = os.path.dirname(os.path.abspath(output))
    entries = load_manifest(manifest, check_files=False)
    n = 0
    for e in entries:
        rec = load_cached_shots(folder, e.id)
        if same_params(rec, params):
            e.shots = rec
            n += 1
    save_manifest(output, entries)
    return {"manifest": output, "videos": len(entries), "videos_with_shots": n}


def run(args) -> dict:
    params = ShotParams(detector=args.detector, threshold=args.threshold, min_scene_len=args.min_len).validate()
    output = args.output or args.manifest
    folder = os.path.dirname(os.path.abspath(output))
    if args.merge:
        return {**merge_shots(args.manifest, output, params), "ok": True}
    entries = load_manifest(args.manifest, check_files=False)
    if args.slurm:  # manifest and settings checked here, before any job is submitted
        return submit_and_merge("vissl_ext.video.shot_cli", args.argv, args, folder,
                                lambda: merge_shots(args.manifest, output, params))
    shard, num_shards = parse_shard(args.shard)
    mine = shard_of(sorted(entries, key=lambda e: e.id), shard, num_shards)
    todo = [e for e in mine if args.force or not same_params(load_cached_shots(folder, e.id), params)]
    logging.info(f"shots ({params.detector}, threshold {params.threshold}) shard {shard}/{num_shards}: {len(mine)} "
                 f"videos, {len(mine) - len(todo)} already done, {len(todo)} to do")
    jobs = [(e, folder, params, args.decoder) for e in todo]
    failures = map_jobs(_detect_one, jobs, args.workers, "shot detection skipped a video", not args.no_progress,
                        desc="shots", unit="video")
    if failures:
        write_json_atomic(os.path.join(folder, f"failed_shots_{shard}-of-{num_shards}.json"), failures, indent=1)
    merged = merge_shots(args.manifest, output, params)
    return {**merged, "processed": len(jobs) - len(failures), "skipped_done": len(mine) - len(todo),
            "failed": len(failures), "failures": failures[:10], "shard": f"{shard}/{num_shards}", "ok": True}
