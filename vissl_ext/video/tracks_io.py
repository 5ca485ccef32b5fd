"""The tracks format: region tracks per video (Region Tracker or ground truth), versioned and
validated on load.

A tracks directory::

    index.json          {"format": "vissl_ext.tracks_index", "version": 1,
                         "manifest": "../frames/manifest.json",   # relative to this dir if possible
                         "videos": {"<video_id>": "videos/<video_id>.json", ...},
                         "params": {...how the tracks were made...},
                         "kind": "region_tracker" | "ground_truth"}
    videos/<id>.json    {"format": "vissl_ext.tracks", "version": 1, "video_id": "<id>",
                         "frame_size": [W, H],          # frames as stored/decoded for the manifest entry
                         "tracks": [{"id": 0, "frames": [p0, p1, ...],   # strictly increasing positions
                                     "boxes": [[x1, y1, x2, y2], ...]}]} # into VideoEntry.frame_indices

Every file is written atomically (a reader never sees half a file).
"""
import json
import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from vissl_ext.video.manifest import VideoEntry
from vissl_ext.utils.atomic_io import check_file_id, write_json_atomic

TRACKS_FORMAT = "vissl_ext.tracks"
INDEX_FORMAT = "vissl_ext.tracks_index"
TRACKS_VERSION = 1
INDEX_NAME = "index.json"
KINDS = ("region_tracker", "ground_truth")
# boxes may touch the border up to float rounding of the pixel coordinates
_EPS = 1e-3


class TracksError(ValueError):
    """A tracks file or index that cannot be used; the message names the file and the fix."""


@dataclass
class Track:
    id: int
    frames: List[int]
    boxes: List[List[float]]

    def to_json(self) -> dict:
        return {"id": int(self.id), "frames": [int(f) for f in self.frames],
                "boxes": [[float(c) for c in b] for b in self.boxes]}


def video_tracks_relpath(video_id: str) -> str:
    return f"videos/{video_id}.json"


def _as_json_track(t) -> dict:
    if isinstance(t, Track):
        return t.to_json()
    return Track(int(t["id"]), list(t["frames"]), [list(b) for b in t["boxes"]]).to_json()


def save_video_tracks(tracks_dir: str, video_id: str, frame_size: Sequence[int], tracks: Iterable) -> str:
    """Validate and write ``<tracks_dir>/videos/<video_id>.json`` atomically; returns its path."""
    check_file_id(video_id, f"{tracks_dir}: tracks of a video", TracksError)
    doc = {"format": TRACKS_FORMAT, "version": TRACKS_VERSION, "video_id": video_id,
           "frame_size": [int(frame_size[0]), int(frame_size[1])], "tracks": [_as_json_track(t) for t in tracks]}
    path = os.path.join(tracks_dir, video_tracks_relpath(video_id))
    _validate_doc(doc, path, None)  # never write a file that the loader would refuse
    write_json_atomic(path, doc)
    return path


def write_tracks_index(tracks_dir: str, manifest_path: str, video_ids: Iterable[str], params: dict,
                       kind: str = "region_tracker") -> str:
    """Write ``<tracks_dir>/index.json`` atomically (the manifest path stored relative to the
    tracks dir when both are on one drive). Every listed video file must exist."""
    if kind not in KINDS:
        raise TracksError(f"tracks kind must be one of {KINDS}, got {kind!r}")
    tracks_dir = os.path.abspath(tracks_dir)
    try:
        manifest = os.path.relpath(os.path.abspath(manifest_path), tracks_dir)
    except ValueError:  # another drive (Windows): keep it absolute
        manifest = os.path.abspath(manifest_path)
    videos = {}
    for vid in sorted(video_ids):
        rel = video_tracks_relpath(vid)
        if not os.path.isfile(os.path.join(tracks_dir, rel)):
            raise TracksError(f"{tracks_dir}: index would list video '{vid}' but {rel} does not exist")
        videos[vid] = rel
    doc = {"format": INDEX_FORMAT, "version": TRACKS_VERSION, "manifest": manifest, "videos": videos,
           "params": params or {}, "kind": kind}
    path = os.path.join(tracks_dir, INDEX_NAME)
    write_json_atomic(path, doc, indent=1)
    return path


def finished_video_ids(tracks_dir: str) -> List[str]:
    """Ids of every video file present under ``<tracks_dir>/videos`` (written atomically, so
    present means finished)."""
    d = os.path.join(tracks_dir, "videos")
    if not os.path.isdir(d):
        return []
    return sorted(f[: -len(".json")] for f in os.listdir(d) if f.endswith(".json") and not f.startswith("."))


def _read_json(path: str, what: str):
    if not os.path.isfile(path):
        raise TracksError(f"{what} {path} does not exist: write it with tools/track_regions.py or tools/build_gt_tracks.py")
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise TracksError(f"{what} {path} is not valid JSON ({e}); regenerate it") from e


def load_tracks_index(path_or_dir: str) -> Tuple[str, Dict[str, str], dict]:
    """(absolute manifest path, {video_id: absolute tracks file path}, the index document)."""
    path = os.path.join(path_or_dir, INDEX_NAME) if os.path.isdir(path_or_dir) else path_or_dir
    doc = _read_json(path, "tracks index")
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT:
        raise TracksError(f"{path} is not a vissl_ext tracks index (format != '{INDEX_FORMAT}')")
    if doc.get("version") != TRACKS_VERSION:
        raise TracksError(f"{path}: tracks index version {doc.get('version')} is not supported (expected {TRACKS_VERSION}); "
                          f"regenerate it with this version of vissl_ext")
    if doc.get("kind") not in KINDS:
        raise TracksError(f"{path}: kind {doc.get('kind')!r} is not one of {KINDS}")
    if not isinstance(doc.get("videos"), dict) or not isinstance(doc.get("manifest"), str):
        raise TracksError(f"{path}: needs 'manifest' (a path) and 'videos' ({{id: file}})")
    for vid in doc["videos"]:  # tools write <out>/<id>.* per video
        check_file_id(vid, f"{path}: video entry", TracksError)
    root = os.path.dirname(os.path.abspath(path))
    manifest = os.path.normpath(os.path.join(root, doc["manifest"]))
    videos = {vid: os.path.normpath(os.path.join(root, rel)) for vid, rel in doc["videos"].items()}
    return manifest, videos, doc


def load_video_tracks(path: str, entry: Optional[VideoEntry] = None) -> dict:
    """Read and validate one video's tracks. With ``entry`` (its manifest entry), the video id
    and every frame position are checked against it, and frame_size against the entry's size
    when the entry records one."""
    doc = _read_json(path, "tracks file")
    _validate_doc(doc, path, entry)
    return doc


def _validate_doc(doc, path: str, entry: Optional[VideoEntry]):
    def fail(msg):
        raise TracksError(f"{path}: {msg}")

    if not isinstance(doc, dict) or doc.get("format") != TRACKS_FORMAT:
        fail(f"not a vissl_ext tracks file (format != '{TRACKS_FORMAT}')")
    if doc.get("version") != TRACKS_VERSION:
        fail(f"tracks version {doc.get('version')} is not supported (expected {TRACKS_VERSION}); regenerate it")
    size = doc.get("frame_size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size)):
        fail(f"frame_size must be [W, H] positive integers, got {size!r}")
    W, H = size
    if entry is not None:
        if doc.get("video_id") != entry.id:
            fail(f"video_id {doc.get('video_id')!r} does not match the manifest entry '{entry.id}'")
        if entry.width and entry.height and (entry.width, entry.height) != (W, H):
            fail(f"frame_size {size} differs from the manifest entry's frames ({entry.width}x{entry.height}): "
                 f"the frames were re-extracted at another size; rebuild the tracks")
    tracks = doc.get("tracks")
    if not isinstance(tracks, list):
        fail("'tracks' must be a list")
    seen = set()
    n = entry.num_frames if entry is not None else None
    for t in tracks:
        tid = t.get("id") if isinstance(t, dict) else None
        if not isinstance(tid, int) or tid in seen:
            fail(f"track ids must be unique integers, got {tid!r}")
        seen.add(tid)
        frames, boxes = t.get("frames"), t.get("boxes")
        if not isinstance(frames, list) or not isinstance(boxes, list) or len(frames) != len(boxes) or not frames:
            fail(f"track {tid}: 'frames' and 'boxes' must be non-empty lists of equal length")
        if any(not isinstance(p, int) or p < 0 for p in frames) or any(b <= a for a, b in zip(frames, frames[1:])):
            fail(f"track {tid}: frames must be strictly increasing non-negative positions, got {frames[:10]}")
        if n is not None and frames[-1] >= n:
            fail(f"track {tid}: frame position {frames[-1]} does not exist (the manifest entry '{entry.id}' has {n} frames); "
                 f"tracks and manifest do not belong together")
        for p, b in zip(frames, boxes):
            if not (isinstance(b, list) and len(b) == 4 and all(isinstance(c, (int, float)) for c in b)):
                fail(f"track {tid}, frame {p}: box must be [x1, y1, x2, y2], got {b!r}")
            x1, y1, x2, y2 = b
            if not (x2 > x1 and y2 > y1):
                fail(f"track {tid}, frame {p}: empty box {b} (needs x2 > x1 and y2 > y1)")
            if x1 < -_EPS or y1 < -_EPS or x2 > W + _EPS or y2 > H + _EPS:
                fail(f"track {tid}, frame {p}: box {b} leaves the {W}x{H} frame")
