"""Shot boundaries with PySceneDetect (``scenedetect``): detection, storage, and frame -> shot.

A video's shots are stored in its manifest entry as ``"shots": {"starts": [0, 131, 250],
"detector": "content", "threshold": 27.0, "min_scene_len": 15, "read": "video"}`` ("read":
whether the source video or the stored frames were decoded). ``starts`` are the first
frames of each shot in the manifest's frame indices (source frame numbers, the space of
``frame_indices``), so a frame at index f lies in shot ``bisect_right(starts, f) - 1`` whatever
stride the extraction used. An entry without ``shots`` is one shot (today's behaviour).

Detection decodes every frame of the source (not only the kept ones: a cut between two kept
frames is still found), downscaled as PySceneDetect's SceneManager does (width >= 256), and
feeds scenedetect's detectors directly, so extraction can detect in the same decoding pass.
Per-video results are cached as ``<manifest folder>/shots/<video id>.json`` (atomic writes):
the detection step resumes, shards, and survives a manifest rebuild.

``scenedetect`` declares ``opencv-python`` as a dependency, which would shadow our
``opencv-contrib-python-headless`` (selective search needs ``cv2.ximgproc``): it is installed
with ``--no-deps`` (requirements-nodeps.txt).
"""
import bisect
import json
import os
from dataclasses import dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

import numpy as np

from vissl_ext.config import dataclass_from_dict
from vissl_ext.utils.atomic_io import write_json_atomic

DETECTORS = ("content", "adaptive")
# scenedetect's own defaults: ContentDetector(threshold=27), AdaptiveDetector(adaptive_threshold=3)
DEFAULT_THRESHOLDS = {"content": 27.0, "adaptive": 3.0}
SHOTS_DIR = "shots"


@dataclass
class ShotParams:
    detector: str = "content"  # content | adaptive (scenedetect's ContentDetector / AdaptiveDetector)
    threshold: float = 0.0  # 0: the detector's default (content 27, adaptive 3)
    min_scene_len: int = 15  # frames; a cut within this many frames of the last one is merged
    min_width: int = 256  # frames are downscaled to about this width first (SceneManager's rule)

    def validate(self):
        if self.detector not in DETECTORS:
            raise ValueError(f"shot detector must be one of {DETECTORS}, got {self.detector!r}")
        if self.threshold < 0:
            raise ValueError(f"shot threshold must be >= 0 (0: detector default), got {self.threshold}")
        if self.min_scene_len < 1 or self.min_width < 16:
            raise ValueError("shot min_scene_len must be >= 1 and min_width >= 16")
        if not self.threshold:
            self.threshold = DEFAULT_THRESHOLDS[self.detector]
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "ShotParams":
        return dataclass_from_dict(cls, d, "shot detection")

    def record(self) -> dict:
        """What the manifest stores next to the starts."""
        return {"detector": self.detector, "threshold": float(self.threshold), "min_scene_len": self.min_scene_len}


class ShotDetector:
    """Feeds frames (in order) to a scenedetect detector; ``finish()`` gives the shot starts.

    Frames are PyAV VideoFrames or BGR/RGB uint8 arrays (OpenCV frames are BGR; the detectors
    work in HSV, so the channel order matters and is given by ``rgb``).
    """

    def __init__(self, params: ShotParams, fps: float = 25.0):
        from scenedetect import AdaptiveDetector, ContentDetector

        self.params = params
        self.fps = fps if fps and fps > 0 else 25.0
        if params.detector == "content":
            self._det = ContentDetector(threshold=params.threshold, min_scene_len=params.min_scene_len)
        else:
            self._det = AdaptiveDetector(adaptive_threshold=params.threshold, min_scene_len=params.min_scene_len)
        self._cuts: List[int] = []
        self._first: Optional[int] = None
        self._last: Optional[int] = None
        self._size = None

    def _target(self, w: int, h: int):
        if self._size is None:
            s = w / self.params.min_width if w >= self.params.min_width else 1.0
            self._size = (max(1, round(w / s)), max(1, round(h / s)))
        return self._size

    def _timecode(self, i: int):
        from scenedetect import FrameTimecode

        return FrameTimecode(int(i), self.fps)

    def feed(self, index: int, frame, rgb: bool = False):
        if isinstance(frame, np.ndarray):
            import cv2

            h, w = frame.shape[:2]
            size = self._target(w, h)
            if size != (w, h):
                frame = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
            if rgb:
                frame = frame[:, :, ::-1]
            img = np.ascontiguousarray(frame)
        else:  # PyAV VideoFrame: swscale converts and downscales in one step
            w, h = self._target(frame.width, frame.height)
            img = frame.to_ndarray(format="bgr24", width=w, height=h)
        if self._first is None:
            self._first = int(index)
        self._last = int(index)
        self._cuts += [tc.frame_num for tc in self._det.process_frame(self._timecode(index), img)]

    def finish(self) -> List[int]:
        """Sorted shot starts: the first fed frame, then every cut."""
        if self._first is None:
            return []
        self._cuts += [tc.frame_num for tc in self._det.post_process(self._timecode(self._last))]
        return [self._first] + sorted({c for c in self._cuts if c > self._first})


def detect_video(path: str, params: ShotParams, decoder: str = "pyav", fps: float = 0.0,
                 last_index: Optional[int] = None) -> List[int]:
    """Shot starts of a video file, in source frame numbers; decodes every frame (up to last_index)."""
    from vissl_ext.video.video_io import decode_sequential, probe_video

    if not fps:
        fps = probe_video(path, decoder).fps
    det = ShotDetector(params, fps)
    for i, _, frame in decode_sequential(path, decoder):
        if last_index is not None and i > last_index:
            break
        det.feed(i, frame)
    return det.finish()


def detect_frames(paths: Sequence[str], indices: Sequence[int], params: ShotParams) -> List[int]:
    """Shot starts of stored frames (a frame folder); cuts fall on the given frame indices."""
    from PIL import Image

    det = ShotDetector(params)
    for p, i in zip(paths, indices):
        with Image.open(p) as img:
            det.feed(i, np.asarray(img.convert("RGB")), rgb=True)
    return det.finish()


def detect_entry(entry, params: ShotParams, decoder: str = "pyav") -> Tuple[List[int], str]:
    """(starts, what was read) for a manifest entry: every frame of the source video when it is
    still there, else the stored frames (a user's frame folder: see
    vissl_ext.video.extraction.detect_entry_shots)."""
    from vissl_ext.video.video_io import is_video_file

    if entry.source and os.path.isfile(entry.source) and is_video_file(entry.source):
        last = max(entry.frame_indices) if entry.frame_indices else None
        dec = entry.extra.get("decoder", decoder)
        return detect_video(entry.source, params, dec, entry.fps, last), "video"
    if entry.is_frame_folder:
        return detect_frames([entry.frame_path(p) for p in range(entry.num_frames)], entry.frame_indices, params), "frames"
    raise FileNotFoundError(f"video '{entry.id}': source {entry.source} is gone and no frames are stored")


# ---------------------------------------------------------------------------------------------
# storage
# ---------------------------------------------------------------------------------------------
def shots_record(starts: Sequence[int], params: ShotParams, read: str = "video") -> dict:
    return {"starts": [int(s) for s in starts], **params.record(), "read": read}


def shot_cache_path(folder: str, vid: str) -> str:
    return os.path.join(folder, SHOTS_DIR, f"{vid}.json")


def save_shots(folder: str, vid: str, record: dict):
    write_json_atomic(shot_cache_path(folder, vid), record)


def load_cached_shots(folder: str, vid: str) -> Optional[dict]:
    path = shot_cache_path(folder, vid)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def same_params(record: Optional[dict], params: ShotParams) -> bool:
    return record is not None and all(record.get(k) == v for k, v in params.record().items())


def attach_cached_shots(folder: str, entries: Iterable) -> int:
    """Set ``entry.shots`` from ``<folder>/shots/<id>.json`` where present; returns how many."""
    n = 0
    for e in entries:
        rec = load_cached_shots(folder, e.id)
        if rec is not None:
            e.shots = rec
            n += 1
    return n


def validate_shots(shots, frame_indices: Sequence[int], where: str) -> Optional[str]:
    """None if ``shots`` is a usable record for these frames, else what is wrong with it."""
    if shots is None:
        return None
    if not isinstance(shots, dict) or not isinstance(shots.get("starts"), list) or not shots["starts"]:
        return f"{where}: 'shots' must be an object with a non-empty 'starts' list"
    s = shots["starts"]
    if not all(isinstance(x, int) and x >= 0 for x in s) or any(b <= a for a, b in zip(s, s[1:])):
        return f"{where}: shot starts must be increasing frame indices >= 0, got {s[:10]}"
    if frame_indices and s[0] > min(frame_indices):
        return f"{where}: the first shot starts at {s[0]}, after the first frame {min(frame_indices)}"
    return None


# ---------------------------------------------------------------------------------------------
# frames -> shots
# ---------------------------------------------------------------------------------------------
def shot_starts(entry) -> List[int]:
    """The entry's shot starts, or one shot from its first frame when none are known."""
    shots = getattr(entry, "shots", None)
    if shots:
        return list(shots["starts"])
    return [min(entry.frame_indices)] if entry.frame_indices else [0]


def shot_of_positions(frame_indices: Sequence[int], starts: Sequence[int]) -> List[int]:
    """Shot number (0..) of each position of the frame list."""
    return [max(bisect.bisect_right(starts, f) - 1, 0) for f in frame_indices]


def add_shot_args(p, prefix: str = ""):
    """The detector flags (--[shot-]detector, --[shot-]threshold, --[shot-]min-len) of the CLIs."""
    p.add_argument(f"--{prefix}detector", choices=DETECTORS, default="content",
                   help="PySceneDetect detector: content (ContentDetector) or adaptive (AdaptiveDetector)")
    p.add_argument(f"--{prefix}threshold", type=float, default=0.0,
                   help="detector threshold (0: its default, content 27, adaptive 3)")
    p.add_argument(f"--{prefix}min-len", type=int, default=15, help="shortest shot in frames (default 15)")


# ---------------------------------------------------------------------------------------------
# videos without shots: what the runs that rely on them say
# ---------------------------------------------------------------------------------------------
def detect_shots_command(manifest: str) -> str:
    return f"python tools/detect_shots.py {manifest}"


def missing_shots_line(entries: Sequence, where: str, consequence: str, fix: str) -> Optional[str]:
    """One console line when some entries have no shots recorded (None when all have): how many,
    what it means for the run, and the command that adds them."""
    n = sum(1 for e in entries if not getattr(e, "shots", None))
    if not n:
        return None
    return f"no shots recorded for {n} of {len(entries)} videos of {where}: {consequence}; add them: {fix}"
