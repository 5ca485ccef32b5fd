"""Extract frames from videos into a manifest that the video data sources read.

    python tools/extract_frames.py /data/videos /data/frames --stride 5 --short-side 256
    python tools/extract_frames.py videos.txt /data/frames --fps 2 --shard 0/4   # one of 4 processes
    python tools/extract_frames.py /data/videos /data/index --index-only          # read videos directly
    python tools/extract_frames.py --merge /data/frames                           # rebuild manifest.json
    python tools/extract_frames.py /data/tracking_videos /data/frames --no-shots  # single-shot footage

Resumable (finished videos are skipped), shardable (--shard i/n, or torch.distributed RANK /
WORLD_SIZE), unreadable videos counted, logged and listed in <out>/failed_<shard>.json.
Decoding goes on past corrupt packets: a video that yields fewer frames than its container
declares keeps the frames that decode, is marked partial in the manifest (decoded and declared
counts), counted in the summary and listed in <out>/partial_<shard>.json.
Shots are detected by default: PySceneDetect runs on every decoded frame in the same pass
(cuts between kept frames are found too) and each video's shot starts go into the manifest, so
temporal pairs (PAIR_SCOPE=shot) and Region Tracker tracks never cross a cut. It costs about
2.1-2.5x the CPU time of decoding alone (benchmarks/bench_shots.py); with extraction the decode
is shared, so the detector adds about 1 CPU-second per minute of video, and --index-only
decodes each video once more for it. --no-shots turns it off; that is safe for single-shot
footage (tracking datasets such as GOT-10k or TrackingNet, surveillance), not for edited video.
Frame folders given as inputs are detected on their stored images (all of them, up to the last
one kept). Videos extracted before without shots get detection only. Existing manifests:
tools/detect_shots.py.
"""
import logging
import os
import sys
from dataclasses import asdict


from vissl_ext.cli.common import (add_video_flags, is_output_error, map_jobs, output_dir, parse_shard, parser, run_main,
                                  shard_of)
from vissl_ext.video.extraction import (
    ExtractParams,
    detect_entry_shots,
    extract_video,
    find_inputs,
    frame_folder_entry,
    index_video,
    load_finished,
    video_id,
    write_manifest,
)
from vissl_ext.video.shots import (
    ShotParams,
    add_shot_args,
    load_cached_shots,
    same_params,
    save_shots,
    shots_record,
)
from vissl_ext.video.video_io import VideoDecodeError
from vissl_ext.cli.shard_jobs import add_slurm_args, submit_and_merge
from vissl_ext.utils.atomic_io import write_json_atomic


def parse_args(argv=None):
    p = parser(__doc__)
    p.add_argument("inputs", nargs="*", help="video files, folders (recursive) or .txt lists of paths")
    p.add_argument("output", nargs="?", help="output folder (frames/, manifest.json)")
    p.add_argument("--stride", type=int, default=1, help="keep every N-th frame (default 1)")
    p.add_argument("--fps", type=float, default=0.0, help="sample at this frame rate instead of a stride")
    p.add_argument("--short-side", type=int, default=None,
                   help="resize short side to this (0: keep; default 256; videos only: frame folders are indexed in place)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    p.add_argument("--max-frames", type=int, default=0, help="at most this many frames per video (0: all)")
    p.add_argument("--index-only", action="store_true", help="write no frames: a manifest to decode videos directly")
    p.add_argument("--merge", action="store_true", help="only rebuild <output>/manifest.json from finished videos")
    add_video_flags(p, shard=True, workers=True)
    p.add_argument("--shots", dest="shots", action="store_true", default=True,
                   help="detect shot boundaries (PySceneDetect) in the same pass: the default, kept for old command lines")
    p.add_argument("--no-shots", dest="shots", action="store_false",
                   help="no shot detection (saves about 1 CPU-second per minute of video, a second decode with "
                        "--index-only); safe for single-shot footage such as tracking datasets")
    add_shot_args(p, prefix="shot-")
    add_slurm_args(p)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.merge and args.output is None and len(args.inputs) == 1:
        args.output, args.inputs = args.inputs[0], []
    if args.output is None:
        if len(args.inputs) < 2:
            p.error("give the inputs and an output folder")
        args.output = args.inputs.pop()
    return args


def main(argv=None) -> int:
    return run_main(parse_args, run, argv)


def _process_one(job):
    path, vid, out, params, index_only, shots, needs_extract = job
    try:
        entry = None
        if os.path.isdir(path):  # already a frame folder: index it in place
            entry = frame_folder_entry(path, vid, params.stride, params.max_frames)
            _save_index(out, entry)
        elif index_only:
            entry = index_video(path, vid, params)
            _save_index(out, entry)
        elif needs_extract:  # shots, if asked for, come from the same decoding pass
            entry = extract_video(path, vid, os.path.join(out, "frames"), params, shots)
        else:  # extracted before without shots: detection only
            entry = load_finished(os.path.join(out, "frames"), vid)
        if shots is not None and entry.shots is None:
            starts, read = detect_entry_shots(entry, shots, params.decoder)
            entry.shots = shots_record(starts, shots, read)
        if shots is not None:
            save_shots(out, vid, entry.shots)
        return vid, None
    except OSError as e:
        if is_output_error(e, out):  # a full or read-only output is not an unreadable video
            raise
        return vid, f"{path}: {e}"
    except VideoDecodeError as e:
        return vid, f"{path}: {e}"


def shot_params_from_args(args):
    """ShotParams unless --no-shots (then None)."""
    if not args.shots:
        return None
    return ShotParams(detector=args.shot_detector, threshold=args.shot_threshold, min_scene_len=args.shot_min_len).validate()


def _save_index(out, entry):
    write_json_atomic(os.path.join(out, "index", f"{entry.id}.json"), asdict(entry))


def _is_done(out, vid, params, index_only):
    if index_only:
        return os.path.isfile(os.path.join(out, "index", f"{vid}.json"))
    e = load_finished(os.path.join(out, "frames"), vid)
    if e is None:
        return False
    done_params = e.extra.get("params")
    if done_params and done_params != asdict(params):
        raise ValueError(
            f"{os.path.join(out, 'frames', vid)} was extracted with other settings {done_params}; "
            f"use a new output folder or delete it to re-extract with {asdict(params)}"
        )
    return True


def _merge(out: str) -> dict:
    path, entries = write_manifest(out)
    partial = sum(bool(e.extra.get("partial")) for e in entries)
    return {"manifest": path, "videos": len(entries), "partial": partial}


def run(args) -> dict:
    out = args.output
    if args.merge:
        return _merge(out)
    short_side = 256 if args.short_side is None else args.short_side
    params = ExtractParams(stride=args.stride, fps=args.fps, short_side=short_side, quality=args.quality,
                           max_frames=args.max_frames, decoder=args.decoder)
    params.validate()
    shard, num_shards = parse_shard(args.shard)
    output_dir(out)
    found = find_inputs(args.inputs)
    folders = [p for p, _ in found if os.path.isdir(p)]
    if folders and (args.short_side is not None or args.fps):
        raise ValueError(f"{len(folders)} inputs are frame folders (e.g. {folders[0]}), which are indexed in place: "
                         f"--short-side and --fps apply to videos only. Leave them out (resize at read time with "
                         f"config.DATA.TRAIN.VIDEO.SHORT_SIDE), or pass videos and frame folders in separate runs")
    ids = {}
    for p, root in found:
        vid = video_id(p, root)
        if vid in ids and ids[vid] != p:
            raise ValueError(f"two inputs map to the same video id '{vid}': {ids[vid]} and {p}; pass them separately")
        ids[vid] = p
    shots = shot_params_from_args(args)
    if args.slurm:  # inputs and settings checked here, before any job is submitted
        # videos finished with other settings: refused here, not in every task (the first finished
        # one tells, as a change of settings shows in all of them; the tasks check their own)
        next((vid for vid in sorted(ids) if _is_done(out, vid, params, args.index_only)), None)
        return submit_and_merge("vissl_ext.video.extract_cli", args.argv, args, out, lambda: _merge(out))
    mine = shard_of(sorted(ids.items()), shard, num_shards)
    todo = []
    for vid, p in mine:
        extract_needed = not _is_done(out, vid, params, args.index_only)
        shots_needed = shots is not None and not same_params(load_cached_shots(out, vid), shots)
        if extract_needed or shots_needed:
            todo.append((p, vid, extract_needed))
    logging.info(f"{len(found)} inputs, shard {shard}/{num_shards}: {len(mine)} videos, "
                 f"{len(mine) - len(todo)} already done, {len(todo)} to do"
                 + (f" (shots: {shots.detector} detector, threshold {shots.threshold})" if shots else ""))
    jobs = [(p, vid, out, params, args.index_only, shots, ex) for p, vid, ex in todo]
    failures = map_jobs(_process_one, jobs, args.workers, "skipped unreadable video", not args.no_progress,
                        desc="index" if args.index_only else "extract", unit="video")
    if failures:
        write_json_atomic(os.path.join(out, f"failed_{shard}-of-{num_shards}.json"), failures, indent=1)
    path, entries = write_manifest(out)
    # from the manifest, so a resumed run lists the partial videos of earlier runs too
    partial = _partial_videos(entries, {vid for vid, _ in mine})
    partial_path = os.path.join(out, f"partial_{shard}-of-{num_shards}.json")
    if partial:
        write_json_atomic(partial_path, partial, indent=1)
        logging.warning(f"{len(partial)} videos decoded only in part (their decodable frames kept), listed in {partial_path}")
    elif os.path.exists(partial_path):
        os.remove(partial_path)
    return {"manifest": path, "videos_in_manifest": len(entries), "processed": len(jobs) - len(failures),
            "skipped_done": len(mine) - len(todo), "failed": len(failures), "failures": failures[:10],
            "partial": len(partial), "partials": partial[:10], "shard": f"{shard}/{num_shards}", "ok": True}


def _partial_videos(entries, ids) -> list:
    """This shard's videos marked partial in the manifest: id, source, decoded and declared counts."""
    return [{"id": e.id, "source": e.source, **e.extra["partial"]}
            for e in entries if e.id in ids and e.extra.get("partial")]
