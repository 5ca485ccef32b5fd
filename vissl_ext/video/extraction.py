"""Frame extraction and video indexing behind ``tools/extract_frames.py``.

Per video, frames go to ``<out>/frames/<video_id>/<frame_index:06d>.jpg`` and a ``meta.json``
written last (atomically): a folder with meta.json is finished, which makes runs resumable.
Frames are written into ``<video_id>.partial/`` first and renamed when complete, so a stopped
run never leaves a half-extracted video that looks finished. Each run rewrites
``<out>/manifest.json`` from every finished video (atomic), so shards writing the same folder
end with a complete manifest whichever finishes last.

Decoding skips corrupt packets and goes on; a video that yields fewer frames than its container
declares keeps the frames that decode and is marked partial (``extra.partial`` in its manifest
entry: decoded and declared counts), counted in the run's summary and listed in
``<out>/partial_<shard>-of-<n>.json``. Index-only runs detect truncated files this way; frames of
a corrupt stretch are found (skipped and counted) when training reads them.
"""
import json
import logging
import os
import re
import shutil
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence, Tuple

from vissl_ext.video.manifest import VideoEntry, VideoManifestError, save_manifest
from vissl_ext.video.shots import ShotDetector, ShotParams, attach_cached_shots, detect_entry, detect_frames, shots_record
from vissl_ext.video.video_io import (
    VideoDecodeError,
    decode_sequential,
    frame_to_pil,
    is_image_file,
    is_partial,
    is_video_file,
    probe_video,
)
from vissl_ext.utils.atomic_io import check_file_id, write_json_atomic

META = "meta.json"


@dataclass
class ExtractParams:
    stride: int = 1  # keep every stride-th frame
    fps: float = 0.0  # > 0: sample at this rate instead of a stride
    short_side: int = 256  # resize so min(w, h) == short_side (0: keep)
    quality: int = 90  # JPEG quality
    max_frames: int = 0  # > 0: stop after this many kept frames per video
    decoder: str = "pyav"

    def validate(self):
        if self.stride < 1:
            raise ValueError(f"--stride must be >= 1, got {self.stride}")
        if self.fps < 0:
            raise ValueError(f"--fps must be >= 0, got {self.fps}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"--quality must be in 1..100, got {self.quality}")
        if self.short_side < 0 or self.max_frames < 0:
            raise ValueError("--short-side and --max-frames must be >= 0")


def video_id(path: str, root: Optional[str]) -> str:
    """A stable, filesystem-safe id: the path relative to the input root, '/' -> '__'."""
    rel = os.path.relpath(path, root) if root else os.path.basename(path)
    if rel in (".", ""):  # the input is itself a frame folder: its own name, never '.'
        rel = os.path.basename(os.path.abspath(path).rstrip(os.sep)) or "frames"
    rel = os.path.splitext(rel)[0] if os.path.isfile(path) else rel
    return re.sub(r"[^A-Za-z0-9._-]+", "_", rel.replace(os.sep, "__"))


def find_inputs(inputs: Sequence[str]) -> List[Tuple[str, Optional[str]]]:
    """(path, root) of every video file and frame folder under the inputs.

    An input is a video file, a folder (searched recursively; a folder holding images and no
    sub-folders is a frame folder), or a .txt list of such paths, one per line.
    """
    found = []
    for inp in inputs:
        if inp.endswith(".txt") and os.path.isfile(inp):
            with open(inp) as f:
                for line in f:
                    line = line.strip()
                    if line and not line.startswith("#"):
                        found.append((line, None))
        elif os.path.isfile(inp):
            found.append((inp, None))
        elif os.path.isdir(inp):
            for dirpath, dirnames, filenames in os.walk(inp):
                dirnames.sort()
                if any(is_image_file(f) for f in filenames) and not dirnames:
                    found.append((dirpath, inp))
                    continue
                for f in sorted(filenames):
                    if is_video_file(f):
                        found.append((os.path.join(dirpath, f), inp))
        else:
            raise FileNotFoundError(f"input {inp} does not exist")
    return found


_NUM = re.compile(r"(\d+)(?!.*\d)")


def frame_folder_entry(folder: str, vid: str, stride: int = 1, max_frames: int = 0) -> VideoEntry:
    """A user's folder of frames as a manifest entry; numbers in the names give frame indices
    (so gaps in the numbering stay visible to pair sampling). ``stride``/``max_frames``: every
    stride-th image in frame order, at most max_frames of them (0: all)."""
    files = sorted(f for f in os.listdir(folder) if is_image_file(f))
    if not files:
        raise VideoDecodeError(f"{folder}: frame folder holds no images")
    nums = [_NUM.search(os.path.splitext(f)[0]) for f in files]
    pairs = list(enumerate(files))
    if all(nums):
        numbered = sorted(zip((int(m.group(1)) for m in nums), files))
        if len({p[0] for p in numbered}) == len(numbered):
            pairs = numbered
    pairs = pairs[::stride][: max_frames or None]
    return VideoEntry(id=vid, source=folder, frames_dir=folder, frames=[p[1] for p in pairs],
                      frame_indices=[p[0] for p in pairs])


def detect_entry_shots(entry: VideoEntry, params: ShotParams, decoder: str = "pyav") -> Tuple[List[int], str]:
    """:func:`vissl_ext.video.shots.detect_entry`, where a user's frame folder indexed in place
    is read whole: every image in it up to the last kept one, so a stride on the folder does not
    space the detector's frames further apart."""
    if entry.source and entry.is_frame_folder and os.path.isdir(entry.source):
        last = max(entry.frame_indices) if entry.frame_indices else None
        every = frame_folder_entry(entry.source, entry.id)
        upto = [(p, i) for p, i in enumerate(every.frame_indices) if last is None or i <= last]
        return detect_frames([every.frame_path(p) for p, _ in upto], [i for _, i in upto], params), "frames"
    return detect_entry(entry, params, decoder)


def index_video(path: str, vid: str, params: ExtractParams) -> VideoEntry:
    """Manifest entry for reading a video directly (no extraction): seek table + kept frames."""
    info = probe_video(path, params.decoder)
    keep = _kept_indices_by_count(info.num_frames, info.fps, params)
    e = VideoEntry(id=vid, source=os.path.abspath(path), frame_indices=keep, fps=info.fps,
                   width=info.width, height=info.height, pts=info.pts, key_pts=info.key_pts,
                   time_base=info.time_base)
    declared = info.extra.get("declared_frames", 0)
    if is_partial(info.num_frames, declared, "truncated" in info.extra):  # demuxing stopped early
        e.extra["partial"] = partial_record(info.num_frames, declared, {"error": info.extra.get("truncated")})
    if params.decoder == "opencv":
        e.extra["decoder"] = "opencv"
        e.pts = list(range(info.num_frames))  # OpenCV seeks by index; a table marks it readable
    return e


def partial_record(decoded: int, declared: int, stats: dict) -> dict:
    """What the manifest and partial_*.json say about a video that yields fewer frames than its
    container declares (corrupt packets skipped, or a truncated file)."""
    return {"decoded": decoded, "declared": declared, "corrupt_packets": stats.get("corrupt_packets", 0),
            "error": stats.get("error")}


def _kept_indices_by_count(n: int, fps: float, p: ExtractParams) -> List[int]:
    if p.fps > 0 and fps > 0:
        keep, nxt = [], 0.0
        for i in range(n):
            if i / fps + 1e-9 >= nxt:
                keep.append(i)
                nxt += 1.0 / p.fps
    else:
        keep = list(range(0, n, p.stride))
    return keep[: p.max_frames] if p.max_frames else keep


def extract_video(path: str, vid: str, frames_root: str, params: ExtractParams,
                  shots: Optional[ShotParams] = None) -> VideoEntry:
    """Decode once, keep frames by stride/fps, resize, write JPEGs; returns the entry.
    With ``shots``, every decoded frame (kept or not) also goes through the shot detector in
    the same pass, and ``entry.shots`` holds the result."""
    final = os.path.join(frames_root, vid)
    partial = final + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    kept_idx, names = [], []
    next_t = 0.0
    width = height = 0
    fps = 0.0
    stats = {}
    detector = None
    if shots is not None:
        try:
            detector = ShotDetector(shots, probe_video(path, params.decoder).fps)
        except VideoDecodeError:
            detector = ShotDetector(shots)
    try:
        for i, t, frame in decode_sequential(path, params.decoder, stats):
            if detector is not None:
                detector.feed(i, frame)
            if params.fps > 0 and t is not None:
                if t + 1e-6 < next_t:
                    continue
                next_t += 1.0 / params.fps
                while next_t <= t:  # a gap in timestamps: do not burst frames to catch up
                    next_t += 1.0 / params.fps
            elif i % params.stride:
                continue
            img = frame_to_pil(frame, params.short_side)
            name = f"{i:06d}.jpg"
            img.save(os.path.join(partial, name), quality=params.quality)
            kept_idx.append(i)
            names.append(name)
            width, height = img.size
            if params.max_frames and len(kept_idx) >= params.max_frames:
                break
        if not kept_idx:
            raise VideoDecodeError(f"{path}: no frame decoded")
        try:
            fps = probe_video(path, params.decoder).fps
        except VideoDecodeError:
            fps = 0.0
        entry = VideoEntry(id=vid, source=os.path.abspath(path), frames_dir=final, frames=names,
                           frame_indices=kept_idx, fps=fps, width=width, height=height,
                           extra={"params": asdict(params)})
        stopped_early = params.max_frames and len(kept_idx) >= params.max_frames
        if not stopped_early and is_partial(stats["decoded"], stats["declared"], stats["error"] is not None):
            entry.extra["partial"] = partial_record(stats["decoded"], stats["declared"], stats)
        meta = asdict(entry)
        meta["frames_dir"] = "."
        write_json_atomic(os.path.join(partial, META), meta)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        if detector is not None:
            entry.shots = shots_record(detector.finish(), shots)
        return entry
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def load_finished(frames_root: str, vid: str) -> Optional[VideoEntry]:
    meta = os.path.join(frames_root, vid, META)
    if not os.path.isfile(meta):
        return None
    with open(meta) as f:
        d = json.load(f)
    d["frames_dir"] = os.path.join(frames_root, vid)
    check_file_id(d.get("id"), meta, VideoManifestError)
    return VideoEntry(**d)


def collect_manifest(out_dir: str) -> List[VideoEntry]:
    """Every finished video under <out>/frames plus indexed ones from <out>/index/."""
    entries = []
    frames_root = os.path.join(out_dir, "frames")
    if os.path.isdir(frames_root):
        for vid in sorted(os.listdir(frames_root)):
            if vid.endswith(".partial"):
                continue
            e = load_finished(frames_root, vid)
            if e is not None:
                entries.append(e)
    index_root = os.path.join(out_dir, "index")
    if os.path.isdir(index_root):
        for name in sorted(os.listdir(index_root)):
            if name.endswith(".json"):
                with open(os.path.join(index_root, name)) as f:
                    d = json.load(f)
                check_file_id(d.get("id"), os.path.join(index_root, name), VideoManifestError)
                entries.append(VideoEntry(**d))
    attach_cached_shots(out_dir, entries)
    return entries


def write_manifest(out_dir: str) -> Tuple[str, List[VideoEntry]]:
    entries = collect_manifest(out_dir)
    path = os.path.join(out_dir, "manifest.json")
    save_manifest(path, entries)
    return path, entries


def entries_for_directory(path: str, decoder: str = "pyav") -> Tuple[List[VideoEntry], List[str]]:
    """Index a folder of videos / frame folders in memory (data sources given a bare folder).
    Returns (entries, failures); failures name each unreadable input."""
    entries, failures = [], []
    params = ExtractParams(decoder=decoder, short_side=0)
    for p, root in find_inputs([path]):
        vid = video_id(p, root)
        try:
            entries.append(frame_folder_entry(p, vid) if os.path.isdir(p) else index_video(p, vid, params))
        except VideoDecodeError as e:
            failures.append(str(e))
            logging.warning(f"skipping unreadable video: {e}")
    return entries, failures
