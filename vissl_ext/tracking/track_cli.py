"""The work of tools/track_regions.py: shard videos over ranks, track each, write the tracks
files (atomic, resumable) and the index (rank 0 under torch.distributed; every shard otherwise,
from all finished videos, so the last shard to finish leaves a complete index)."""
import logging
import os
from dataclasses import asdict

import torch
from tqdm import tqdm

from vissl_ext.data.extract_cli import parse_shard
from vissl_ext.data.extraction import shard_of
from vissl_ext.data.manifest import load_manifest
from vissl_ext.tracking.features import RegionFeatures
from vissl_ext.tracking.propose_cli import proposals_path
from vissl_ext.tracking.proposals import load_proposals
from vissl_ext.tracking.tracker import TrackerParams, track_video
from vissl_ext.tracking.tracks_io import (
    finished_video_ids,
    save_video_tracks,
    write_tracks_index,
)
from vissl_ext.tracking.trunk import load_tracker_trunk
from vissl_ext.utils_io import write_json_atomic

_COUNTS = ("frames", "unreadable", "frames_without_regions", "regions", "regions_unmatched", "matches", "tracks")
_TIMES = ("t_read", "t_forward", "t_pool", "t_match", "t_chain")


def load_params_file(path: str) -> dict:
    """Tracker parameters from a YAML file (e.g. configs/tracking/region_tracker.yaml)."""
    import yaml

    with open(path) as f:
        doc = yaml.safe_load(f) or {}
    doc = doc.get("tracker", doc)
    try:
        TrackerParams.from_dict(doc)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{path}: {e}") from e
    return doc


def _distributed(device: str):
    """(rank, world, initialised here) when launched by torchrun / torch.distributed."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size(), False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "MASTER_ADDR" in os.environ:
        backend = os.environ.get("VISSL_EXT_TRACK_BACKEND") or ("nccl" if device.startswith("cuda") else "gloo")
        torch.distributed.init_process_group(backend)
        return torch.distributed.get_rank(), torch.distributed.get_world_size(), True
    return None


def _device(arg: str, dist_on: bool) -> str:
    if arg == "cuda" and dist_on:
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    return arg


def run(args) -> dict:
    pd = load_params_file(args.params) if args.params else {}
    for k in asdict(TrackerParams()):  # command-line values win over the file
        v = getattr(args, k, None)
        if v is not None:
            pd[k] = v
    params = TrackerParams.from_dict(pd)
    dist = _distributed(args.device)
    if dist and not args.shard:
        shard, num_shards, inited = dist
    else:
        (shard, num_shards), inited = parse_shard(args.shard), False
    device = _device(args.device, dist is not None)
    entries = load_manifest(args.manifest)
    by_id = {e.id: e for e in entries}
    mine = shard_of(sorted(by_id), shard, num_shards)
    out = args.output
    os.makedirs(os.path.join(out, "videos"), exist_ok=True)
    record = {"tracker": asdict(params), "checkpoint": os.path.abspath(args.checkpoint) if args.checkpoint and args.checkpoint != "random" else "random",
              "config": args.config, "overrides": list(args.override or []), "proposals": os.path.abspath(args.proposals)}
    record["proposal_params"] = _proposal_params(args.proposals, sorted(by_id))
    _check_params(out, record)
    done = set(finished_video_ids(out))
    todo = [v for v in mine if v not in done]
    logging.info(f"tracker shard {shard}/{num_shards} on {device}: {len(mine)} videos, {len(mine) - len(todo)} done, {len(todo)} to do")
    totals = {k: 0 for k in _COUNTS + _TIMES}
    skipped, missing = [], []
    if todo:
        trunk = load_tracker_trunk(args.checkpoint, args.config, args.override or [], params.feature)
        extractor = RegionFeatures(trunk, params.feature, params.pool_size, params.input_short_side, device)
        bar = tqdm(total=sum(by_id[v].num_frames for v in todo), desc=f"track[{shard}]", unit="frame",
                   disable=args.no_progress)
        for vid in todo:
            entry = by_id[vid]
            ppath = proposals_path(args.proposals, vid)
            if not os.path.isfile(ppath):
                missing.append(vid)
                logging.warning(f"tracker: no proposals for '{vid}' ({ppath}): skipped; run tools/propose_regions.py")
                bar.update(entry.num_frames)
                continue
            props = load_proposals(ppath)
            tracks, st = track_video(entry, props, extractor, params, args.decoder)
            for k in totals:
                totals[k] += st.get(k, 0)
            if "skipped" in st:
                skipped.append(f"{vid}: {st['skipped']}")
                logging.warning(f"tracker: '{vid}' gives no track ({st['skipped']})")
            size = props.frame_size or [max(entry.width, 1), max(entry.height, 1)]
            save_video_tracks(out, vid, size, tracks)  # also when empty: marks the video done
            bar.update(entry.num_frames)
        bar.close()
    if totals["regions_unmatched"]:
        logging.info(f"tracker: {totals['regions_unmatched']} of {totals['regions']} regions found no match "
                     f"(threshold {params.threshold}, mutual={params.mutual}); their tracks end there")
    summary = {"ok": True, "output": out, "shard": f"{shard}/{num_shards}", "device": device, "videos": len(mine),
               "skipped_done": len(mine) - len(todo), "no_track": skipped[:20], "missing_proposals": missing[:20],
               "num_no_track": len(skipped), "num_missing_proposals": len(missing),
               **{k: v for k, v in totals.items()}}
    write_json_atomic(os.path.join(out, f"summary_{shard}-of-{num_shards}.json"), summary, indent=1)
    if dist is not None and not args.shard:
        torch.distributed.barrier()
    if dist is None or args.shard or shard == 0:  # one writer under torch.distributed
        finished = [v for v in finished_video_ids(out) if v in by_id]
        summary["index"] = write_tracks_index(out, args.manifest, finished, record, "region_tracker")
        summary["videos_in_index"] = len(finished)
    if inited:
        torch.distributed.destroy_process_group()
    return summary


def _proposal_params(proposals_dir: str, ids) -> dict:
    """How the proposals were made (from the first cached video), for the index's record."""
    for vid in ids:
        path = proposals_path(proposals_dir, vid)
        if os.path.isfile(path):
            return load_proposals(path).params
    return {}


def _check_params(out: str, record: dict):
    """Resuming with other settings would mix tracks of two trackers in one folder: refuse."""
    import json

    path = os.path.join(out, "params.json")
    if os.path.isfile(path):
        with open(path) as f:
            old = json.load(f)
        if old != record:
            raise ValueError(f"{out} holds tracks made with other settings ({path}: {old}); use a new output folder "
                             f"or delete it to track with {record}")
    else:
        write_json_atomic(path, record, indent=1)

