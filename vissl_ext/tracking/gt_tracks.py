"""Ground-truth tracks (the paper's "Ground Truth Tracks" variant) from tracking annotations, in
the same tracks format as the Region Tracker, plus a video manifest over the frames in place.

Layouts:
  GOT-10k      <root>/[train|val|test/]<SEQ>/{00000001.jpg ..., groundtruth.txt (x,y,w,h per line),
               absence.label (1 = target absent), cover.label (0..8 visible fraction), meta_info.ini}
  TrackingNet  <root>/[TRAIN_0/...]{anno/<SEQ>.txt (x,y,w,h per line), frames/<SEQ>/0.jpg 1.jpg ...}

Line k of an annotation is frame number k+1 (GOT-10k) or k (TrackingNet). Each sequence gives
one track (its single target) over the frames where the box is present. Malformed lines,
absent / covered frames, boxes empty after clipping, lines without a frame: counted, logged,
skipped.
"""
import configparser
import logging
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from PIL import Image

from vissl_ext.video.extraction import frame_folder_entry
from vissl_ext.video.manifest import VideoEntry
from vissl_ext.video.tracks_io import Track, save_video_tracks, write_tracks_index
from vissl_ext.video.video_io import VideoDecodeError

LAYOUTS = ("got10k", "trackingnet")


@dataclass
class GTSequence:
    video_id: str
    frames_dir: str
    anno_path: str
    first_frame_number: int  # frame number of annotation line 0
    absence_path: Optional[str] = None
    cover_path: Optional[str] = None
    meta_path: Optional[str] = None


@dataclass
class GTCounts:
    sequences: int = 0
    tracks: int = 0
    boxes: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: Dict[str, List[str]] = field(default_factory=dict)

    def skip(self, reason: str, where: str):
        self.skipped[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 5:
            ex.append(where)
            logging.warning(f"ground-truth tracks: {reason}: {where}")


def _safe_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def find_got10k(root: str) -> Iterator[GTSequence]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        if "groundtruth.txt" in filenames:
            dirnames[:] = []
            opt = {n: os.path.join(dirpath, f) if f in filenames else None
                   for n, f in (("absence_path", "absence.label"), ("cover_path", "cover.label"), ("meta_path", "meta_info.ini"))}
            yield GTSequence(_safe_id(os.path.basename(dirpath)), dirpath, os.path.join(dirpath, "groundtruth.txt"), 1, **opt)


def find_trackingnet(root: str) -> Iterator[GTSequence]:
    chunks = [root] if os.path.isdir(os.path.join(root, "anno")) else \
        [os.path.join(root, d) for d in sorted(os.listdir(root)) if os.path.isdir(os.path.join(root, d, "anno"))]
    if not chunks:
        raise FileNotFoundError(f"{root}: no TrackingNet layout found (expected anno/ and frames/, or TRAIN_*/anno/)")
    for chunk in chunks:
        for f in sorted(os.listdir(os.path.join(chunk, "anno"))):
            if f.endswith(".txt"):
                seq = f[:-4]
                yield GTSequence(_safe_id(seq), os.path.join(chunk, "frames", seq), os.path.join(chunk, "anno", f), 0)


def parse_box_line(line: str) -> Optional[Tuple[float, float, float, float]]:
    """x, y, w, h from 'x,y,w,h' (commas, tabs or spaces); None when malformed."""
    parts = [p for p in re.split(r"[,\s]+", line.strip()) if p]
    if len(parts) != 4:
        return None
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        return None
    return vals if all(math.isfinite(v) for v in vals) else None


def _read_labels(path: Optional[str], counts: GTCounts, valid: range) -> Optional[List[Optional[int]]]:
    """Per-line integer labels; a malformed or out-of-range value is counted, named and None."""
    if path is None:
        return None
    out = []
    with open(path) as f:
        for k, line in enumerate(f):
            try:
                v = float(line.strip())
            except ValueError:
                counts.skip("malformed label line", f"{path}:{k + 1}")
                out.append(None)
                continue
            if v != int(v) or int(v) not in valid:
                counts.skip(f"label outside {valid.start}..{valid.stop - 1}", f"{path}:{k + 1}: {line.strip()[:20]!r}")
                out.append(None)
                continue
            out.append(int(v))
    return out


def read_meta_info(path: Optional[str]) -> dict:
    """GOT-10k meta_info.ini ('[METAINFO]' then 'key: value' lines) as a dict; {} when unreadable."""
    if not path:
        return {}
    cp = configparser.ConfigParser(interpolation=None)
    try:
        with open(path) as f:
            text = f.read()
        if not text.lstrip().startswith("["):
            text = "[METAINFO]\n" + text
        cp.read_string(text)
    except (configparser.Error, UnicodeDecodeError, OSError) as e:
        logging.warning(f"ground-truth tracks: unreadable meta_info {path} ({e}): ignored")
        return {}
    return {k: v for s in cp.sections() for k, v in cp.items(s)}


def sequence_tracks(seq: GTSequence, counts: GTCounts, min_cover: int = 1,
                    min_side: float = 1.0) -> Optional[Tuple[VideoEntry, List[Track]]]:
    """The manifest entry and the track of one sequence, or None (counted) when unusable."""
    where = seq.frames_dir
    try:
        entry = frame_folder_entry(seq.frames_dir, seq.video_id)
    except (VideoDecodeError, FileNotFoundError) as e:
        counts.skip("sequence without frames", f"{where} ({e})")
        return None
    try:
        with Image.open(entry.frame_path(0)) as im:
            W, H = im.size
    except Exception as e:
        counts.skip("sequence with unreadable first frame", f"{entry.frame_path(0)} ({e})")
        return None
    entry.width, entry.height = W, H
    meta = read_meta_info(seq.meta_path)
    if meta:
        entry.extra["meta_info"] = meta
    entry.extra["annotation"] = os.path.abspath(seq.anno_path)
    absence = _read_labels(seq.absence_path, counts, range(0, 2))
    cover = _read_labels(seq.cover_path, counts, range(0, 9))
    pos_of = {num: p for p, num in enumerate(entry.frame_indices)}
    frames, boxes = [], []
    with open(seq.anno_path) as f:
        lines = f.readlines()
    for k, line in enumerate(lines):
        loc = f"{seq.anno_path}:{k + 1}"
        if not line.strip():
            counts.skip("blank annotation line", loc)
            continue
        b = parse_box_line(line)
        if b is None:
            counts.skip("malformed annotation line", f"{loc}: {line.strip()[:60]!r}")
            continue
        pos = pos_of.get(seq.first_frame_number + k)
        if pos is None:
            counts.skip("annotation line without a frame", loc)
            continue
        # a label file shorter than the annotation says nothing of the frames past its end:
        # those boxes are not trusted as visible (counted and named), rather than taken as present
        short = [(n, len(lab)) for n, lab in (("absence.label", absence), ("cover.label", cover))
                 if lab is not None and k >= len(lab)]
        if short:
            counts.skip(f"no {short[0][0]} line for the box", f"{loc} ({short[0][0]} has {short[0][1]} lines)")
            continue
        if absence is not None and absence[k] is None or cover is not None and cover[k] is None:
            continue  # its label line was counted as malformed / out of range
        if absence is not None and absence[k] == 1:
            counts.skip("target absent", loc)
            continue
        if cover is not None and cover[k] < min_cover:
            counts.skip(f"cover below {min_cover}", loc)
            continue
        x, y, w, h = b
        x1, y1, x2, y2 = max(0.0, x), max(0.0, y), min(float(W), x + w), min(float(H), y + h)
        if x2 - x1 < min_side or y2 - y1 < min_side:
            counts.skip("box empty inside the frame", loc)
            continue
        frames.append(pos)
        boxes.append([x1, y1, x2, y2])
    counts.sequences += 1
    if len(frames) < 2:
        counts.skip("sequence with fewer than two boxes (no pair)", seq.anno_path)
        return entry, []
    counts.tracks += 1
    counts.boxes += len(frames)
    return entry, [Track(0, frames, boxes)]


def build_gt_tracks(root: str, layout: str, out: str, min_cover: int = 1, min_side: float = 1.0,
                    progress: bool = True) -> dict:
    """Write ``<out>/manifest.json`` (frames stay in place) and ``<out>/tracks/`` (kind
    ground_truth) for every sequence under ``root``; returns a summary with the counts."""
    from tqdm import tqdm

    from vissl_ext.video.manifest import save_manifest

    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if not os.path.isdir(root):
        raise FileNotFoundError(f"annotation root {root} does not exist")
    seqs = list(find_got10k(root) if layout == "got10k" else find_trackingnet(root))
    if not seqs:
        raise FileNotFoundError(f"{root}: no {layout} sequence found (see `tools/build_gt_tracks.py --help` for the layout)")
    ids = Counter(s.video_id for s in seqs)
    dup = [i for i, c in ids.items() if c > 1]
    if dup:
        raise ValueError(f"{root}: sequence names occur twice ({dup[:5]}); build each split separately")
    counts = GTCounts()
    entries = []
    tracks_dir = os.path.join(out, "tracks")
    for seq in tqdm(seqs, desc=f"{layout} tracks", unit="seq", disable=not progress):
        res = sequence_tracks(seq, counts, min_cover, min_side)
        if res is None:
            continue
        entry, tracks = res
        entries.append(entry)
        save_video_tracks(tracks_dir, entry.id, (entry.width, entry.height), tracks)
    manifest = os.path.join(out, "manifest.json")
    save_manifest(manifest, entries)
    params = {"layout": layout, "root": os.path.abspath(root), "min_cover": min_cover, "min_side": min_side}
    index = write_tracks_index(tracks_dir, manifest, [e.id for e in entries], params, "ground_truth")
    summary = {"ok": True, "manifest": manifest, "index": index, "sequences_found": len(seqs),
               "sequences": counts.sequences, "tracks": counts.tracks, "boxes": counts.boxes,
               "skipped": dict(counts.skipped), "examples": counts.examples}
    if counts.skipped:
        logging.info(f"ground-truth tracks: skipped {dict(counts.skipped)}")
    return summary
