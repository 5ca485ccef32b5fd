"""The work of tools/extract_frames.py (kept here so tests and the demo call it in-process)."""
import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict

from tqdm import tqdm

from vissl_ext.data.extraction import (
    ExtractParams,
    extract_video,
    find_inputs,
    frame_folder_entry,
    index_video,
    load_finished,
    shard_of,
    video_id,
    write_manifest,
)
from vissl_ext.data.video_io import VideoDecodeError
from vissl_ext.utils_io import write_json_atomic


def parse_shard(shard):
    """'i/n', or torch.distributed's RANK/WORLD_SIZE from the environment, or 0/1."""
    if shard:
        try:
            i, n = (int(x) for x in shard.split("/"))
        except ValueError:
            raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {shard!r}")
        if n < 1 or not 0 <= i < n:
            raise ValueError(f"--shard {shard}: need 0 <= i < n")
        return i, n
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return 0, 1


def _process_one(job):
    path, vid, out, params, index_only = job
    try:
        if os.path.isdir(path):  # already a frame folder: index it in place
            e = frame_folder_entry(path, vid)
            _save_index(out, e)
        elif index_only:
            _save_index(out, index_video(path, vid, params))
        else:
            extract_video(path, vid, os.path.join(out, "frames"), params)
        return vid, None
    except (VideoDecodeError, OSError) as e:
        return vid, f"{path}: {e}"


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


def run(args) -> dict:
    out = args.output
    if args.merge:
        path, n = write_manifest(out)
        return {"manifest": path, "videos": n}
    params = ExtractParams(stride=args.stride, fps=args.fps, short_side=args.short_side, quality=args.quality,
                           max_frames=args.max_frames, decoder=args.decoder)
    params.validate()
    shard, num_shards = parse_shard(args.shard)
    os.makedirs(out, exist_ok=True)
    found = find_inputs(args.inputs)
    ids = {}
    for p, root in found:
        vid = video_id(p, root)
        if vid in ids and ids[vid] != p:
            raise ValueError(f"two inputs map to the same video id '{vid}': {ids[vid]} and {p}; pass them separately")
        ids[vid] = p
    mine = shard_of(sorted(ids.items()), shard, num_shards)
    todo = [(p, vid) for vid, p in mine if not _is_done(out, vid, params, args.index_only)]
    logging.info(f"{len(found)} inputs, shard {shard}/{num_shards}: {len(mine)} videos, "
                 f"{len(mine) - len(todo)} already done, {len(todo)} to do")
    jobs = [(p, vid, out, params, args.index_only) for p, vid in todo]
    failures = []
    bar = tqdm(total=len(jobs), desc="index" if args.index_only else "extract", unit="video",
               disable=getattr(args, "no_progress", False))
    if args.workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(args.workers) as ex:
            results = ex.map(_process_one, jobs)
            for vid, err in results:
                bar.update(1)
                if err:
                    failures.append(err)
                    logging.warning(f"skipped unreadable video: {err}")
    else:
        for job in jobs:
            vid, err = _process_one(job)
            bar.update(1)
            if err:
                failures.append(err)
                logging.warning(f"skipped unreadable video: {err}")
    bar.close()
    if failures:
        write_json_atomic(os.path.join(out, f"failed_{shard}-of-{num_shards}.json"), failures, indent=1)
    path, n = write_manifest(out)
    return {"manifest": path, "videos_in_manifest": n, "processed": len(jobs) - len(failures),
            "skipped_done": len(mine) - len(todo), "failed": len(failures), "failures": failures[:10],
            "shard": f"{shard}/{num_shards}", "ok": True}
