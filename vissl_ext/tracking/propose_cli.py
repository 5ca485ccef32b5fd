"""Selective-search region proposals for every frame of a video manifest, cached per video.

    python tools/propose_regions.py /data/frames/manifest.json /data/proposals
    python tools/propose_regions.py manifest.json /data/proposals --mode quality --top-r 200
    python tools/propose_regions.py manifest.json /data/proposals --shard 1/4 --workers 8

Writes <out>/<video_id>.npz (atomic: present means finished; rerunning skips finished videos)
and <out>/summary_<shard>-of-<n>.json. Shardable with --shard i/n (or torch.distributed's
RANK/WORLD_SIZE). Frames without a proposal and unreadable frames are counted and logged.
"""
import json
import logging
import os
import sys
from dataclasses import asdict

import numpy as np
from tqdm import tqdm

from vissl_ext.cli.common import add_video_flags, output_dir, parse_shard, parser, process_pool, run_main, shard_of
from vissl_ext.video.manifest import load_manifest
from vissl_ext.video.video_io import VideoDecodeError
from vissl_ext.cli.shard_jobs import add_slurm_args, merge_shard_summaries, submit_and_merge
from vissl_ext.tracking.proposals import ProposalParams, propose_video, proposals_path, save_proposals
from vissl_ext.utils.atomic_io import write_json_atomic


def parse_args(argv=None):
    d = ProposalParams()
    p = parser(__doc__)
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
    add_video_flags(p, shard=True, workers=True)
    add_slurm_args(p)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv=None) -> int:
    # failed videos are counted, logged and listed in the summary: exit code 0
    return run_main(parse_args, run, argv, shown=lambda s: {k: v for k, v in s.items() if k != "params"})


def _done(path: str, params: dict) -> bool:
    if not os.path.isfile(path):
        return False
    try:
        with np.load(path, allow_pickle=False) as z:
            done = json.loads(str(z["meta"]))["params"]
    except Exception:
        logging.warning(f"{path}: unreadable cache, recomputing it")
        return False
    if done != params:
        raise ValueError(f"{path} was made with other settings {done}; use a new output folder or delete it "
                         f"to recompute with {params}")
    return True


def _one(job):
    entry, params, out, decoder, single_thread = job
    if single_thread:
        import cv2

        cv2.setNumThreads(1)  # one process per core: no oversubscription
    try:
        vp = propose_video(entry, ProposalParams(**params), decoder)
    except (VideoDecodeError, OSError) as e:
        return entry.id, None, f"{entry.id}: {e}"
    save_proposals(proposals_path(out, entry.id), vp)
    stats = {"frames": len(vp.readable), "unreadable": int((~vp.readable).sum()), "empty": vp.num_empty,
             "boxes": int(sum(len(b) for b in vp.boxes))}
    return entry.id, stats, None


def run(args) -> dict:
    params = ProposalParams(mode=args.mode, ss_short_side=args.ss_short_side, min_side=args.min_side,
                            max_aspect=args.max_aspect, min_size_ratio=args.min_size_ratio,
                            max_size_ratio=args.max_size_ratio, nms_iou=args.nms_iou, top_r=args.top_r).validate()
    pd = asdict(params)
    shard, num_shards = parse_shard(args.shard)
    entries = load_manifest(args.manifest)
    if args.slurm:  # manifest and settings checked here, before any job is submitted
        # caches made with other settings: refused here, not in every task (a change of settings
        # shows in every finished cache, so the first one found tells; the tasks check their own)
        next((e for e in entries if _done(proposals_path(args.output, e.id), pd)), None)
        return submit_and_merge("vissl_ext.tracking.propose_cli", args.argv, args, args.output,
                                lambda: merge_shard_summaries(args.output, args.slurm_shards, "summary.json",
                                                              "vissl_ext.tracking.propose_cli"))
    mine = shard_of(sorted(entries, key=lambda e: e.id), shard, num_shards)
    output_dir(args.output)
    todo = [e for e in mine if not _done(proposals_path(args.output, e.id), pd)]
    logging.info(f"proposals shard {shard}/{num_shards}: {len(mine)} videos, {len(mine) - len(todo)} done, {len(todo)} to do")
    jobs = [(e, pd, args.output, args.decoder, args.workers > 1) for e in todo]
    totals = {"frames": 0, "unreadable": 0, "empty": 0, "boxes": 0}
    failures, empty_videos = [], []
    bar = tqdm(total=sum(e.num_frames for e in todo), desc="proposals", unit="frame", disable=args.no_progress)

    def collect(vid, stats, err, n):
        bar.update(n)
        if err:
            failures.append(err)
            logging.warning(f"proposals: video skipped: {err}")
            return
        for k in totals:
            totals[k] += stats[k]
        if stats["empty"] or stats["unreadable"]:
            empty_videos.append(vid)
            logging.warning(f"proposals: {vid}: {stats['empty']} frames without a proposal, {stats['unreadable']} unreadable")

    if args.workers > 1 and len(jobs) > 1:
        with process_pool(args.workers) as ex:
            for job, res in zip(jobs, ex.map(_one, jobs)):
                collect(*res, job[0].num_frames)
    else:
        for job in jobs:
            collect(*_one(job), job[0].num_frames)
    bar.close()
    summary = {"ok": True, "output": args.output, "shard": f"{shard}/{num_shards}", "videos": len(mine),
               "skipped_done": len(mine) - len(todo), "processed": len(jobs) - len(failures), "failed": len(failures),
               "failures": failures[:10], "params": pd, **totals,
               "videos_with_empty_or_unreadable_frames": empty_videos[:20]}
    if totals["empty"]:
        logging.warning(f"proposals: {totals['empty']} of {totals['frames']} frames have no proposal after filtering "
                        f"(they get no region; tracks skip them)")
    write_json_atomic(os.path.join(args.output, f"summary_{shard}-of-{num_shards}.json"), summary, indent=1)
    return summary
