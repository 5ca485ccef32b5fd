#!/usr/bin/env python
"""Start-up cost of the launcher's data-path check (vissl_ext.engines.preflight.check_data_paths)
against the read every rank does (the data source's construction, VISSL's build_dataset), on
large synthetic but valid data of each kind our sources read, in one run:

    python benchmarks/bench_startup.py                        # 200k videos (Kinetics scale)
    python benchmarks/bench_startup.py --videos 20000 --kinds frames tracks

Generated in a temporary folder (removed at the end), with every referenced file present
(empty files: start-up only checks that they exist):
  frames   manifest.json of frame folders (tools/extract_frames.py): FRAMES files per video
  video    manifest.json of videos read directly (--index-only): a seek table of VIDEO_FRAMES
  tracks   a tracks index (tools/track_regions.py) over the frames manifest, TRACKS tracks a video
  ris      a RIS manifest (tools/build_ris_trajectories.py), one entry per frame file

Printed per kind, in seconds, best of --rounds interleaved rounds (the file system cache is
warm: on a network file system the per-file checks cost more):
  floor         json.load of every file the rank reads (no validation, no objects)
  preflight     check_data_paths in the launcher
  rank read     build_dataset(cfg, split), the read of every rank, as a plain data source does it
  rank, stamped the same read when the launcher's preflight stamp matches (the ranks skip the
                file-existence checks the launcher just did; vissl_ext.engines.preflight)
and the ratios: preflight / rank read, and the share of the launcher's check in the start-up
(preflight / (preflight + rank read)) before and after the stamp.
"""
import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import vissl_ext  # noqa: E402,F401
from vissl_ext.config import compose_config  # noqa: E402
from vissl_ext.video.manifest import VideoEntry, save_manifest  # noqa: E402
from vissl_ext.invariance.manifest import RISEntry, RISManifest  # noqa: E402

KINDS = ("frames", "video", "tracks", "ris")


def video_id(i: int) -> str:
    return f"k400_{i:07d}"


def make_frames(root: str, n: int, frames: int) -> str:
    """Frame folders with empty frame files, and their manifest (written by the real writer)."""
    names = [f"{5 * j:06d}.jpg" for j in range(frames)]
    videos = []
    for i in range(n):
        d = os.path.join(root, "frames", video_id(i))
        os.makedirs(d)
        for name in names:
            open(os.path.join(d, name), "wb").close()
        videos.append(VideoEntry(id=video_id(i), source=f"/kinetics/{video_id(i)}.mp4", frames_dir=d,
                                 frames=list(names), frame_indices=[5 * j for j in range(frames)], fps=25.0,
                                 width=340, height=256))
    path = os.path.join(root, "frames", "manifest.json")
    save_manifest(path, videos)
    return path


def make_video_index(root: str, n: int, frames: int) -> str:
    """Videos read directly: one existing file per video (a frame file stands in for the mp4:
    start-up only checks that it exists) and a PyAV seek table of ``frames`` frames."""
    pts = [512 * j for j in range(frames)]
    videos = [VideoEntry(id=video_id(i), source=os.path.join(root, "frames", video_id(i), "000000.jpg"),
                         frame_indices=list(range(frames)), fps=25.0, width=340, height=256, pts=list(pts),
                         key_pts=pts[::12], time_base="1/12800") for i in range(n)]
    path = os.path.join(root, "index", "manifest.json")
    save_manifest(path, videos)
    return path


def make_tracks(root: str, manifest: str, n: int, frames: int, tracks: int) -> str:
    """A tracks directory over the frames manifest. The per-video files are written with a plain
    json.dump (write_json_atomic's fsync per file would take the generation, not the reading,
    into minutes); the rank read below validates every one of them."""
    from vissl_ext.video.tracks_io import write_tracks_index

    d = os.path.join(root, "tracks")
    os.makedirs(os.path.join(d, "videos"))
    for i in range(n):
        ts = [{"id": t, "frames": list(range(t % 2, frames, 2)),
               "boxes": [[10.0 + t, 20.0, 110.0 + t, 120.0] for _ in range(t % 2, frames, 2)]} for t in range(tracks)]
        with open(os.path.join(d, "videos", f"{video_id(i)}.json"), "w") as f:
            json.dump({"format": "vissl_ext.tracks", "version": 1, "video_id": video_id(i), "frame_size": [340, 256],
                       "tracks": ts}, f)
    return write_tracks_index(d, manifest, [video_id(i) for i in range(n)], {"bench": True}, kind="region_tracker")


def make_ris(root: str, n: int, frames: int) -> str:
    """One entry per frame file (the GOT-10k layout: a trajectory per video, a class per 400)."""
    entries = [RISEntry(image=os.path.join(root, "frames", video_id(i), f"{5 * j:06d}.jpg"), trajectory=video_id(i),
                        cls=str(i % 400), box=[10.0, 20.0, 100.0, 80.0]) for i in range(n) for j in range(frames)]
    path = os.path.join(root, "ris", "manifest.json")
    RISManifest(entries=entries, set="bench", invariance="occlusion", image_size=128).save(path)
    return path


def config_for(kind: str, path: str, ckpt: str):
    common = [f"config.CHECKPOINT.DIR={ckpt}", "config.MACHINE.DEVICE=cpu", "config.DISTRIBUTED.NUM_PROC_PER_NODE=1"]
    if kind == "ris":
        over = ["config=benchmark/ris/custom", f"config.DATA.TEST.DATA_PATHS=[{path}]"]
    else:
        name = "pretrain/region_tracker" if kind == "tracks" else "pretrain/frame_temporal"
        over = [f"config={name}", f"config.DATA.TRAIN.DATA_PATHS=[{path}]", "config.DATA.TRAIN.DATA_LIMIT=-1",
                "config.DATA.TRAIN.VIDEO.PAIR_GAP=2"]
    return compose_config(over + common)[1]


def files_read(kind: str, path: str):
    """Every JSON file the rank reads for this kind (the floor loads each once)."""
    if kind != "tracks":
        return [path]
    from vissl_ext.video.tracks_io import load_tracks_index

    manifest, files, _ = load_tracks_index(path)
    return [path, manifest, *files.values()]


def timed(fn):
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--videos", type=int, default=200_000, help="videos (Kinetics-400: about 240k)")
    ap.add_argument("--frames", type=int, default=8, help="frame files per video (frames, tracks, ris)")
    ap.add_argument("--video-frames", type=int, default=250, help="seek-table frames per video (video kind)")
    ap.add_argument("--tracks", type=int, default=4, help="tracks per video (tracks kind)")
    ap.add_argument("--ris-videos", type=int, default=25_000, help="videos of the RIS manifest (x --frames entries)")
    ap.add_argument("--kinds", nargs="*", default=list(KINDS), choices=KINDS)
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best counts")
    ap.add_argument("--tmp", default=None, help="folder for the generated data (default: the system's)")
    a = ap.parse_args()

    from vissl.data import build_dataset

    from vissl_ext.engines.preflight import check_data_paths

    try:
        from vissl_ext.utils.validation_stamp import STAMP_ENV, write_stamp
        stamping = True
    except ImportError:  # the script also measures the code from before the stamp
        stamping = False

    work = tempfile.mkdtemp(prefix="bench_startup_", dir=a.tmp)
    try:
        t0 = time.perf_counter()
        paths = {}
        frames = make_frames(work, a.videos, a.frames)
        paths["frames"] = frames
        if "video" in a.kinds:
            paths["video"] = make_video_index(work, a.videos, a.video_frames)
        if "tracks" in a.kinds:
            paths["tracks"] = make_tracks(work, frames, a.videos, a.frames, a.tracks)
        if "ris" in a.kinds:
            paths["ris"] = make_ris(work, min(a.ris_videos, a.videos), a.frames)
        print(f"generated in {time.perf_counter() - t0:.0f} s under {work}: {a.videos} videos, {a.frames} frame files "
              f"each; video kind {a.video_frames} frames a video; {a.tracks} tracks a video; RIS "
              f"{min(a.ris_videos, a.videos) * a.frames} entries")
        for kind in a.kinds:
            mb = sum(os.path.getsize(p) for p in files_read(kind, paths[kind])) / 2 ** 20
            print(f"  {kind}: {mb:.0f} MB of JSON read by each rank")

        best = {k: {} for k in a.kinds}
        sizes = {}
        for r in range(a.rounds):
            for kind in a.kinds:
                ckpt = os.path.join(work, "ckpt", kind)
                cfg = config_for(kind, paths[kind], ckpt)
                split = "TEST" if kind == "ris" else "TRAIN"
                files = files_read(kind, paths[kind])

                def floor():
                    for p in files:
                        with open(p) as f:
                            json.load(f)

                rows = {"floor": timed(floor)[0], "preflight": timed(lambda: check_data_paths(cfg))[0]}
                t, ds = timed(lambda: build_dataset(cfg, split))
                rows["rank read"] = t
                sizes[kind] = len(ds)
                del ds
                if stamping:  # the launcher's route: check, record the stamp, the ranks find it
                    rows["preflight + stamp"], stamp = timed(lambda: write_stamp(ckpt, check_data_paths(cfg)))
                    os.environ[STAMP_ENV] = stamp
                    try:
                        t, ds = timed(lambda: build_dataset(cfg, split))
                    finally:
                        os.environ.pop(STAMP_ENV, None)
                    rows["rank, stamped"] = t
                    assert len(ds) == sizes[kind]
                    del ds
                    with open(stamp) as f:
                        recorded = len(json.load(f)["files"])
                for k, v in rows.items():
                    best[kind][k] = min(best[kind].get(k, v), v)
                print(f"round {r + 1} {kind}: " + ", ".join(f"{k} {v:.2f} s" for k, v in rows.items())
                      + (f" (the stamp records {recorded} file)" if stamping else ""), flush=True)

        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"\nStart-up reads, best of {a.rounds} rounds (load average {load:.1f}, {os.cpu_count()} cores), seconds:")
        head = ["kind", "samples", "floor", "preflight", "rank read", "pre/rank", "pre share"]
        head += ["rank stamped", "start-up", "stamped", "after/before"] if stamping else []
        print("".join(f"{h:>13}" for h in head))
        for kind in a.kinds:
            b = best[kind]
            pre, rank = b["preflight"], b["rank read"]
            cells = [kind, sizes[kind], f"{b['floor']:.2f}", f"{pre:.2f}", f"{rank:.2f}", f"{pre / rank:.2f}x",
                     f"{100 * pre / (pre + rank):.0f}%"]
            if stamping:
                after = b["preflight + stamp"] + b["rank, stamped"]
                cells += [f"{b['rank, stamped']:.2f}", f"{pre + rank:.2f}", f"{after:.2f}", f"{after / (pre + rank):.2f}x"]
            print("".join(f"{c:>13}" for c in cells))
        print("pre share: preflight / (preflight + rank read), the launcher's part of the start-up; start-up: "
              "preflight + rank read; stamped: preflight + writing the stamp + the stamped rank read")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
