"""Region Tracker: chain selective-search regions through each video by nearest ROI-pooled res4
features of a VISSL trunk, and write tracks (vissl_ext/video/tracks_io.py format).

    python tools/track_regions.py manifest.json proposals/ tracks/ --checkpoint model_final_checkpoint_phase199.torch
    python tools/track_regions.py manifest.json proposals/ tracks/ --checkpoint ck.torch --device cuda \\
        --params configs/tracking/region_tracker.yaml --threshold 0.5 --no-mutual
    torchrun --nproc_per_node 8 tools/track_regions.py manifest.json proposals/ tracks/ --checkpoint ck.torch --device cuda

The trunk is built from a VISSL config (--config, default pretrain/moco_video_baseline, plus
--override config.MODEL...) and loads any VISSL checkpoint or plain trunk state dict
(--checkpoint random: random init, for smoke tests). Resumable (finished videos are skipped);
videos are sharded over torch.distributed ranks (rank 0 writes index.json) or with --shard i/n.

Where the manifest records shots (tools/extract_frames.py detects them by default), no match
links two shots: tracks end at cuts. Videos without shots are counted in one warning line at
start-up (naming the tools/detect_shots.py command) and as videos_without_shots in the summary.

Tracks files are written atomically and resumably; the index by rank 0 under torch.distributed, by
every shard otherwise (from all finished videos, so the last shard to finish leaves a complete index).
"""
import logging
import os
import sys
from dataclasses import asdict

from tqdm import tqdm

from vissl_ext.cli.common import add_video_flags, output_dir, parse_shard, parser, run_main, shard_of
from vissl_ext.video.manifest import load_manifest
from vissl_ext.video.shots import detect_shots_command, missing_shots_line
from vissl_ext.video.tracks_io import finished_video_ids, save_video_tracks, write_tracks_index
from vissl_ext.utils.safe_load import add_trust_pickle_flag
from vissl_ext.cli.shard_jobs import add_slurm_args, merge_shard_summaries, submit_and_merge
from vissl_ext.tracking.proposals import load_proposals, proposals_path
from vissl_ext.tracking.tracker_params import TrackerParams
from vissl_ext.utils.atomic_io import write_json_atomic

_COUNTS = ("frames", "unreadable", "frames_without_regions", "regions", "regions_unmatched", "matches", "tracks",
           "links_cut")
_TIMES = ("t_read", "t_forward", "t_pool", "t_match", "t_chain")


def parse_args(argv=None):
    d = TrackerParams()
    p = parser(__doc__)
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
    add_video_flags(p, shard=True)
    add_trust_pickle_flag(p)
    add_slurm_args(p, gpus_default=1)
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv=None) -> int:
    return run_main(parse_args, run, argv)


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
    torch = sys.modules.get("torch")  # a process group exists only if torch is imported: no import to ask
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size(), False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and "MASTER_ADDR" in os.environ:
        import torch

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
    no_shots = missing_shots_line(entries, args.manifest, "tracks may link regions across their cuts",
                                  detect_shots_command(args.manifest) + ", before tracking")
    if no_shots and (dist is None or args.shard or shard == 0):  # one line under torch.distributed
        logging.warning(no_shots)
    by_id = {e.id: e for e in entries}
    mine = shard_of(sorted(by_id), shard, num_shards)
    out = args.output
    output_dir(os.path.join(out, "videos"))
    record = {"tracker": asdict(params), "checkpoint": os.path.abspath(args.checkpoint) if args.checkpoint and args.checkpoint != "random" else "random",
              "config": args.config, "overrides": list(args.override or []), "proposals": os.path.abspath(args.proposals)}
    record["proposal_params"] = _proposal_params(args.proposals, sorted(by_id))
    _check_params(out, record)
    if args.slurm:  # manifest, settings and output checked here, before any job is submitted
        return submit_and_merge("vissl_ext.tracking.track_cli", args.argv, args, out,
                                lambda: _merge(args, by_id, record))
    done = set(finished_video_ids(out))
    todo = [v for v in mine if v not in done]
    logging.info(f"tracker shard {shard}/{num_shards} on {device}: {len(mine)} videos, {len(mine) - len(todo)} done, {len(todo)} to do")
    totals = {k: 0 for k in _COUNTS + _TIMES}
    skipped, missing = [], []
    if todo:
        from vissl_ext.tracking.features import RegionFeatures
        from vissl_ext.tracking.tracker import track_video
        from vissl_ext.tracking.trunk import load_tracker_trunk

        trunk = load_tracker_trunk(args.checkpoint, args.config, args.override or [], params.feature,
                                   trust_pickle=args.trust_pickle)
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
    if totals["links_cut"]:
        logging.info(f"tracker: {totals['links_cut']} matches across a shot cut were dropped (tracks end at cuts)")
    if totals["regions_unmatched"]:
        logging.info(f"tracker: {totals['regions_unmatched']} of {totals['regions']} regions found no match "
                     f"(threshold {params.threshold}, mutual={params.mutual}); their tracks end there")
    summary = {"ok": True, "output": out, "shard": f"{shard}/{num_shards}", "device": device, "videos": len(mine),
               "skipped_done": len(mine) - len(todo), "no_track": skipped[:20], "missing_proposals": missing[:20],
               "num_no_track": len(skipped), "num_missing_proposals": len(missing),
               "videos_without_shots": sum(1 for v in mine if not by_id[v].shots),
               **{k: v for k, v in totals.items()}}
    write_json_atomic(os.path.join(out, f"summary_{shard}-of-{num_shards}.json"), summary, indent=1)
    if dist is not None and not args.shard:
        import torch

        torch.distributed.barrier()
    if dist is None or args.shard or shard == 0:  # one writer under torch.distributed
        summary.update(_write_index(args, by_id, record))
    if inited:
        import torch

        torch.distributed.destroy_process_group()
    return summary


def _write_index(args, by_id, record) -> dict:
    finished = [v for v in finished_video_ids(args.output) if v in by_id]
    return {"index": write_tracks_index(args.output, args.manifest, finished, record, "region_tracker"),
            "videos_in_index": len(finished)}


def _merge(args, by_id, record) -> dict:
    merged = merge_shard_summaries(args.output, args.slurm_shards, "summary.json", "vissl_ext.tracking.track_cli")
    return {**merged, **_write_index(args, by_id, record)}


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

