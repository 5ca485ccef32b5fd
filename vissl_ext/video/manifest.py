"""The video manifest: which videos exist, where their frames are, and how to read them.

One JSON file (``manifest.json``) written by ``tools/extract_frames.py``::

    {"format": "vissl_ext.video_manifest", "version": 1,
     "videos": [{"id": "clips__a", "source": "/data/clips/a.mp4",
                 "frames_dir": "frames/clips__a",          # relative to the manifest, or null
                 "frames": ["000000.jpg", "000005.jpg"],   # files in frames_dir (null: decode source)
                 "frame_indices": [0, 5],                   # source frame index of each frame
                 "fps": 25.0, "width": 640, "height": 272,
                 "pts": null, "key_pts": null, "time_base": null,   # PyAV seek table (video mode)
                 "shots": {"starts": [0, 131], "detector": "content",  # optional: shot boundaries
                           "threshold": 27.0, "min_scene_len": 15}}]}   # (vissl_ext.video.shots)

Videos read directly (no extraction) have ``frames_dir = null`` and the seek table from
:func:`vissl_ext.video.video_io.probe_video`.
"""
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from typing import List, Optional

from vissl_ext.video.shots import validate_shots
from vissl_ext.video.video_io import VideoInfo
from vissl_ext.utils.atomic_io import check_file_id, write_json_atomic

MANIFEST_FORMAT = "vissl_ext.video_manifest"
MANIFEST_VERSION = 1


class VideoManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and the fix."""


@dataclass
class VideoEntry:
    id: str
    source: Optional[str]
    frame_indices: List[int]
    frames_dir: Optional[str] = None
    frames: Optional[List[str]] = None
    fps: float = 0.0
    width: int = 0
    height: int = 0
    pts: Optional[List[int]] = None
    key_pts: Optional[List[int]] = None
    time_base: Optional[str] = None
    extra: dict = field(default_factory=dict)
    shots: Optional[dict] = None  # shot starts in frame-index space + detector (None: one shot)

    @property
    def num_frames(self) -> int:
        return len(self.frame_indices)

    @property
    def is_frame_folder(self) -> bool:
        return self.frames_dir is not None

    def frame_path(self, pos: int) -> str:
        return os.path.join(self.frames_dir, self.frames[pos])

    def video_info(self) -> VideoInfo:
        """Seek table of the source video (direct decoding)."""
        n = max(self.frame_indices) + 1 if self.frame_indices else 0
        return VideoInfo(num_frames=len(self.pts) if self.pts else n, fps=self.fps, width=self.width,
                         height=self.height, pts=self.pts, key_pts=self.key_pts, time_base=self.time_base)


def save_manifest(path: str, videos: List[VideoEntry], extra: Optional[dict] = None):
    """Write atomically; frames_dir is stored relative to the manifest's folder."""
    root = os.path.dirname(os.path.abspath(path))
    out = []
    for v in videos:
        d = asdict(v)
        if d["shots"] is None:  # manifests without shots stay byte-identical to before
            del d["shots"]
        if v.frames_dir is not None:
            d["frames_dir"] = os.path.relpath(os.path.abspath(v.frames_dir), root)
        out.append(d)
    doc = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "videos": out}
    if extra:
        doc["extra"] = extra
    write_json_atomic(path, doc)


def load_manifest(path: str, check_files: bool = True) -> List[VideoEntry]:
    """Read and validate a manifest. Missing frame files or videos raise VideoManifestError naming
    the first few, so a moved dataset fails at start-up rather than in a data-loader worker."""
    if not os.path.isfile(path):
        raise VideoManifestError(f"manifest {path} does not exist: write one with tools/extract_frames.py")
    try:
        with open(path) as f:
            doc = json.load(f)
    except json.JSONDecodeError as e:
        raise VideoManifestError(f"manifest {path} is not valid JSON ({e}); rewrite it with tools/extract_frames.py --merge") from e
    if not isinstance(doc, dict) or doc.get("format") != MANIFEST_FORMAT:
        raise VideoManifestError(f"{path} is not a vissl_ext video manifest (format != '{MANIFEST_FORMAT}')")
    if doc.get("version") != MANIFEST_VERSION:
        raise VideoManifestError(f"{path}: manifest version {doc.get('version')} is not supported (expected {MANIFEST_VERSION})")
    root = os.path.dirname(os.path.abspath(path))
    known = set(VideoEntry.__dataclass_fields__)
    videos = []
    for i, d in enumerate(doc.get("videos", [])):
        unknown = set(d) - known
        if unknown or "id" not in d or "frame_indices" not in d:
            raise VideoManifestError(f"{path}: video #{i} is malformed (unknown keys {sorted(unknown)}, needs 'id' and 'frame_indices')")
        v = VideoEntry(**d)
        check_file_id(v.id, f"{path}: video #{i}", VideoManifestError)  # tools write <out>/<id>.*
        if v.frames_dir is not None:
            v.frames_dir = os.path.normpath(os.path.join(root, v.frames_dir))
            if v.frames is None or len(v.frames) != len(v.frame_indices):
                raise VideoManifestError(f"{path}: video '{v.id}' lists {len(v.frames or [])} frames for {len(v.frame_indices)} indices")
        elif v.source is None or v.pts is None and v.frame_indices:
            raise VideoManifestError(f"{path}: video '{v.id}' has neither frames_dir nor a source with a seek table")
        bad_shots = validate_shots(v.shots, v.frame_indices, f"{path}: video '{v.id}'")
        if bad_shots:
            raise VideoManifestError(bad_shots + "; rerun tools/detect_shots.py on it")
        videos.append(v)
    if check_files:
        missing = []
        for v in videos:
            if v.is_frame_folder:
                try:
                    present = set(os.listdir(v.frames_dir))
                except FileNotFoundError:
                    missing.append(v.frames_dir)
                    continue
                missing += [os.path.join(v.frames_dir, f) for f in v.frames if f not in present]
            elif not os.path.isfile(v.source):
                missing.append(v.source)
            if len(missing) >= 5:
                break
        if missing:
            raise VideoManifestError(
                f"manifest {path} points at missing files, e.g. {missing[:5]}: the data moved or extraction "
                f"was interrupted; rerun tools/extract_frames.py (it resumes) or fix the paths"
            )
    with_shots = [v for v in videos if v.shots]
    logging.info(f"manifest {path}: {len(videos)} videos, {sum(v.num_frames for v in videos)} frames"
                 + (f", shots known for {len(with_shots)} ({sum(len(v.shots['starts']) for v in with_shots)} shots)"
                    if with_shots else ""))
    return videos
