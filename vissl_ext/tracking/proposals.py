"""Unsupervised region proposals: OpenCV ximgproc selective search per frame, filtered, cached
per video.

Selective search runs on the frame resized so that its short side is ``ss_short_side`` (default
224: about 0.5 s per frame in fast mode on one CPU core, against 1.6 s at 360) and the boxes
are mapped back to the frame as stored. Boxes are kept in the method's ranking order (OpenCV
returns them ranked), so "top-R" means the first R that survive the filters.

Cache: ``<dir>/<video_id>.npz`` (written atomically: present means finished) holding every
frame's boxes ``[x1, y1, x2, y2]`` in stored-frame pixels, concatenated, with per-frame counts.
"""
import ctypes
import io
import json
import logging
import os
import zlib
from dataclasses import asdict, dataclass
from typing import List, Optional

import numpy as np

from vissl_ext.config import dataclass_from_dict
from vissl_ext.video.manifest import VideoEntry
from vissl_ext.tracking.frames import iter_frames
from vissl_ext.utils.atomic_io import atomic_open

MODES = ("fast", "quality", "single")
CACHE_VERSION = 1


@dataclass
class ProposalParams:
    mode: str = "fast"  # fast | quality | single (OpenCV's three strategies)
    ss_short_side: int = 224  # selective search input: short side resized to this (0: as stored; never upsampled)
    min_side: float = 16.0  # px of the stored frame (one res4 cell only when stored at the tracker's input size)
    max_aspect: float = 3.0  # max(w/h, h/w): slivers are edges, not objects
    min_size_ratio: float = 0.01  # box area / frame area: tiny regions carry little content
    max_size_ratio: float = 0.8  # near-whole-frame boxes are the frame, not a region
    nms_iou: float = 0.7  # 0 disables; the hierarchy emits many nested near-duplicates
    top_r: int = 100  # keep the first R surviving boxes in the method's ranking

    def validate(self):
        if self.mode not in MODES:
            raise ValueError(f"proposal mode must be one of {MODES}, got {self.mode!r}")
        if self.ss_short_side < 0 or self.min_side < 0 or self.top_r < 1:
            raise ValueError("ss_short_side and min_side must be >= 0, top_r >= 1")
        if self.max_aspect < 1:
            raise ValueError(f"max_aspect must be >= 1, got {self.max_aspect}")
        if not 0 <= self.min_size_ratio < self.max_size_ratio <= 1:
            raise ValueError(f"need 0 <= min_size_ratio < max_size_ratio <= 1, got {self.min_size_ratio}, {self.max_size_ratio}")
        if not 0 <= self.nms_iou <= 1:
            raise ValueError(f"nms_iou must be in [0, 1], got {self.nms_iou}")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "ProposalParams":
        return dataclass_from_dict(cls, d, "proposal")


_LIBC = ctypes.CDLL(None)


def frame_seed(video_id: str, position: int) -> int:
    """A seed fixed by (video, frame): the same boxes alone, in a batch, in any shard, after a resume."""
    return zlib.crc32(f"{video_id}\0{position}".encode()) & 0x7FFFFFFF


def selective_search(img_rgb: np.ndarray, mode: str = "fast", seed: Optional[int] = None) -> np.ndarray:
    """Raw selective search boxes [x1, y1, x2, y2] on this image, in the method's ranking order.

    OpenCV ranks the boxes with C's ``rand()`` (not ``cv::theRNG``, so ``cv2.setRNGSeed`` does
    not fix them): ``seed`` seeds libc's generator just before, making the ranking repeatable."""
    import cv2  # here, not at the top: the CLI's --help and its SLURM submission need neither

    if seed is not None:
        _LIBC.srand(ctypes.c_uint(seed))
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(cv2.cvtColor(img_rgb, cv2.COLOR_RGB2BGR))
    {"fast": ss.switchToSelectiveSearchFast, "quality": ss.switchToSelectiveSearchQuality,
     "single": ss.switchToSingleStrategy}[mode]()
    rects = np.asarray(ss.process(), dtype=np.float32).reshape(-1, 4)
    rects[:, 2:] += rects[:, :2]
    return rects


def filter_boxes(boxes: np.ndarray, width: int, height: int, p: ProposalParams) -> np.ndarray:
    """Clip to the frame, drop small / thin / too small or large boxes, NMS, keep the first
    top_r. Order (the method's ranking) is preserved."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4).copy()
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, width)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, height)
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    area = w * h / float(width * height)
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = np.maximum(w / h, h / w)
    keep = (np.minimum(w, h) >= max(p.min_side, 1e-6)) & (aspect <= p.max_aspect) \
        & (area >= p.min_size_ratio) & (area <= p.max_size_ratio)
    b = b[keep]
    if p.nms_iou > 0 and len(b) > 1:
        import torch
        from torchvision.ops import nms

        scores = torch.arange(len(b), 0, -1, dtype=torch.float32)  # rank 0 scores highest
        kept = nms(torch.from_numpy(b), scores, p.nms_iou).numpy()  # sorted by score: rank order
        b = b[kept]
    return b[: p.top_r]


def propose_frame(img, p: ProposalParams, seed: Optional[int] = None):
    """(filtered boxes in stored-frame pixels, raw box count) for one PIL or RGB array frame;
    ``seed``: see :func:`selective_search`."""
    arr = np.asarray(img.convert("RGB")) if hasattr(img, "convert") else np.asarray(img)
    H, W = arr.shape[:2]
    small = arr
    if p.ss_short_side and min(W, H) > p.ss_short_side:
        import cv2

        s = p.ss_short_side / min(W, H)
        small = cv2.resize(arr, (max(1, round(W * s)), max(1, round(H * s))), interpolation=cv2.INTER_AREA)
    raw = selective_search(small, p.mode, seed)
    sx, sy = W / small.shape[1], H / small.shape[0]
    raw *= np.array([sx, sy, sx, sy], dtype=np.float32)
    return filter_boxes(raw, W, H, p), len(raw)


@dataclass
class VideoProposals:
    video_id: str
    frame_size: Optional[List[int]]  # [W, H]; None when no frame was readable
    boxes: List[np.ndarray]  # per manifest position: (n_i, 4) float32
    readable: np.ndarray  # per position: bool
    raw_counts: np.ndarray  # per position: selective search boxes before filtering
    params: dict

    @property
    def num_empty(self) -> int:
        """Readable frames left without a proposal."""
        return int(sum(1 for b, r in zip(self.boxes, self.readable) if r and len(b) == 0))


def propose_video(entry: VideoEntry, p: ProposalParams, decoder: str = "pyav") -> VideoProposals:
    """Proposals for every frame of a manifest entry; unreadable frames are logged and get none."""
    n = entry.num_frames
    boxes = [np.zeros((0, 4), np.float32)] * n
    readable = np.zeros(n, bool)
    raw = np.zeros(n, np.int32)
    size = None
    for pos, img, err in iter_frames(entry, range(n), decoder):
        if img is None:
            logging.warning(f"proposals: unreadable frame skipped: {err}")
            continue
        if size is None:
            size = list(img.size)
        elif list(img.size) != size:
            logging.warning(f"proposals: {entry.id} frame {pos} is {img.size}, not {tuple(size)}: skipped")
            continue
        boxes[pos], raw[pos] = propose_frame(img, p, frame_seed(entry.id, pos))
        readable[pos] = True
    return VideoProposals(entry.id, size, boxes, readable, raw, asdict(p))


def proposals_path(out_dir: str, video_id: str) -> str:
    """Where a proposal cache folder keeps one video's proposals."""
    return os.path.join(out_dir, f"{video_id}.npz")


def save_proposals(path: str, vp: VideoProposals):
    counts = np.array([len(b) for b in vp.boxes], np.int32)
    allb = np.concatenate(vp.boxes).astype(np.float32) if len(vp.boxes) else np.zeros((0, 4), np.float32)
    buf = io.BytesIO()
    np.savez(buf, boxes=allb, counts=counts, readable=vp.readable, raw_counts=vp.raw_counts,
             frame_size=np.array(vp.frame_size or [0, 0], np.int64),
             meta=np.array(json.dumps({"video_id": vp.video_id, "params": vp.params, "version": CACHE_VERSION})))
    with atomic_open(path, "wb") as f:
        f.write(buf.getvalue())


def load_proposals(path: str) -> VideoProposals:
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            counts = z["counts"]
            boxes = np.split(z["boxes"], np.cumsum(counts)[:-1]) if len(counts) else []
            size = [int(s) for s in z["frame_size"]]
            vp = VideoProposals(meta["video_id"], size if size[0] > 0 else None, list(boxes), z["readable"].astype(bool),
                                z["raw_counts"], meta["params"])
    except FileNotFoundError:
        raise FileNotFoundError(f"proposals {path} do not exist: run tools/propose_regions.py first")
    except Exception as e:
        raise ValueError(f"proposals {path} are unreadable ({type(e).__name__}: {e}); delete the file and rerun "
                         f"tools/propose_regions.py (it resumes)") from e
    if meta.get("version") != CACHE_VERSION:
        raise ValueError(f"proposals {path}: cache version {meta.get('version')} is not {CACHE_VERSION}; rerun tools/propose_regions.py")
    return vp
