"""Video decoding: probing, random access by frame index, and frame-folder reading.

Random access never decodes from the start of a file: PyAV seeks to the nearest keyframe at or
before the wanted frame and decodes forward; several wanted frames in one GOP share that decode.
Frame index i means the i-th frame in presentation order (the order of sorted packet pts).
"""
import bisect
import heapq
import logging
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Dict, List, Optional, Sequence

import numpy as np
from PIL import Image

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".wmv", ".3gp", ".ts")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DECODERS = ("pyav", "opencv")


class VideoDecodeError(RuntimeError):
    """A video (or one of its frames) cannot be read; the message names the file."""


@dataclass
class VideoInfo:
    num_frames: int
    fps: float
    width: int
    height: int
    # presentation timestamps of every frame, sorted (PyAV probes only); keyframe pts sorted
    pts: Optional[List[int]] = None
    key_pts: Optional[List[int]] = None
    time_base: Optional[str] = None
    extra: Dict = field(default_factory=dict)


def is_video_file(path: str) -> bool:
    return path.lower().endswith(VIDEO_EXTENSIONS)


def is_image_file(path: str) -> bool:
    return path.lower().endswith(IMAGE_EXTENSIONS)


def resize_short_side(img: Image.Image, short_side: int) -> Image.Image:
    """Resize so that min(w, h) == short_side (keeps aspect); no-op for short_side <= 0."""
    if not short_side or short_side <= 0:
        return img
    w, h = img.size
    s = min(w, h)
    if s == short_side:
        return img
    scale = short_side / s
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return img.resize(size, Image.BILINEAR)


def _scaled_size(width: int, height: int, short_side: int):
    if not short_side or short_side <= 0:
        return width, height
    scale = short_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


# --------------------------------------------------------------------------------------------
# probing
# --------------------------------------------------------------------------------------------
def probe_video(path: str, decoder: str = "pyav") -> VideoInfo:
    """Frame count, size, fps and (PyAV) the pts of every frame and keyframe.

    PyAV probing demuxes packets without decoding them (fast), then decodes one frame to make
    sure the stream is decodable. Raises VideoDecodeError naming the file.
    """
    if not os.path.isfile(path):
        raise VideoDecodeError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(f"{path}: file is empty (0 bytes)")
    if decoder == "pyav":
        return _probe_pyav(path)
    if decoder == "opencv":
        return _probe_opencv(path)
    raise ValueError(f"unknown decoder '{decoder}', expected one of {DECODERS}")


def _open_pyav(path: str):
    """(container, its first video stream); VideoDecodeError naming the file otherwise."""
    import av

    try:
        container = av.open(path)
    except Exception as e:  # av.error.* for corrupt headers, unknown formats
        raise VideoDecodeError(f"{path}: cannot open ({type(e).__name__}: {e})") from e
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(f"{path}: no video stream")
    return container, container.streams.video[0]


def _probe_pyav(path: str) -> VideoInfo:
    container, stream = _open_pyav(path)
    try:
        pts, key_pts, truncated = _demux_pts(container, stream)
        if not pts:
            raise VideoDecodeError(f"{path}: no decodable video packets" + (f" ({truncated})" if truncated else ""))
        pts.sort()
        key_pts.sort()
        if not key_pts or key_pts[0] > pts[0]:
            key_pts.insert(0, pts[0])
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        ctx = stream.codec_context
        info = VideoInfo(
            num_frames=len(pts), fps=float(rate), width=int(ctx.width), height=int(ctx.height),
            pts=pts, key_pts=key_pts, time_base=str(stream.time_base),
        )
        declared = int(stream.frames or 0)
        if declared:
            info.extra["declared_frames"] = declared
        if truncated:
            info.extra["truncated"] = truncated
            logging.warning(f"{path}: demuxing stopped early ({truncated}); using its first {len(pts)} frames")
    finally:
        container.close()
    # decode the first frame: catches files whose packets exist but do not decode
    reader = PyAVReader(path, info)
    try:
        reader.read([0])
    finally:
        reader.close()
    return info


def _demux_pts(container, stream):
    """(pts of every video packet, pts of keyframes, why demuxing stopped early or None)."""
    pts, key_pts, truncated = [], [], None
    try:
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                key_pts.append(packet.pts)
    except Exception as e:  # a truncated file ends demuxing early: keep what was read
        truncated = f"{type(e).__name__}: {e}"
    return pts, key_pts, truncated


def _probe_opencv(path: str) -> VideoInfo:
    import cv2

    cap = cv2.VideoCapture(path)
    try:
        if not cap.isOpened():
            raise VideoDecodeError(f"{path}: OpenCV cannot open it")
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
        ok, frame = cap.read()
        if not ok or frame is None:
            raise VideoDecodeError(f"{path}: first frame does not decode")
        h, w = frame.shape[:2]
        if n <= 0:  # some containers do not store a count: count by grabbing
            n = 1
            while cap.grab():
                n += 1
        return VideoInfo(num_frames=n, fps=fps, width=w, height=h)
    finally:
        cap.release()


# --------------------------------------------------------------------------------------------
# random access
# --------------------------------------------------------------------------------------------
class PyAVReader:
    """Reads frames by index with keyframe seeking. Not thread-safe; one per worker process."""

    def __init__(self, path: str, info: VideoInfo):
        if info.pts is None:
            raise ValueError(f"{path}: PyAV reading needs pts from probe_video(decoder='pyav')")
        self.path = path
        self.info = info
        self._container = None
        self._stream = None

    def _open(self):
        import av

        self._container = av.open(self.path)
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "AUTO"

    def close(self):
        if self._container is not None:
            self._container.close()
        self._container = None

    def _keyframe_before(self, p: int) -> int:
        kp = self.info.key_pts
        i = bisect.bisect_right(kp, p) - 1
        return kp[max(i, 0)]

    def read(self, indices: Sequence[int], short_side: int = 0) -> List[Image.Image]:
        """PIL RGB images of the given frame indices (any order, repeats allowed)."""
        n = self.info.num_frames
        for i in indices:
            if not 0 <= i < n:
                raise VideoDecodeError(f"{self.path}: frame {i} out of range [0, {n})")
        try:
            return self._read(indices, short_side)
        except VideoDecodeError:
            self.close()
            raise
        except Exception as e:
            self.close()
            raise VideoDecodeError(f"{self.path}: decoding frames {list(indices)} failed ({type(e).__name__}: {e})") from e

    def _read(self, indices, short_side):
        if self._container is None:
            self._open()
        pts = self.info.pts
        wanted = sorted(set(pts[i] for i in indices))
        # group targets by the keyframe that starts their GOP: one seek + one decode pass each
        groups = OrderedDict()
        for t in wanted:
            groups.setdefault(self._keyframe_before(t), []).append(t)
        found = {}
        for kf, targets in groups.items():
            found.update(self._decode_group(kf, targets))
        out = {}
        for t, frame in found.items():
            w, h = _scaled_size(frame.width, frame.height, short_side)
            if (w, h) != (frame.width, frame.height):
                out[t] = frame.reformat(width=w, height=h, format="rgb24", interpolation="BILINEAR").to_image()
            else:
                out[t] = frame.to_image()
        return [out[pts[i]] for i in indices]

    # frames a decoder may emit out of pts order (B-frame reordering, broken streams)
    _REORDER_SLACK = 16

    def _decode_group(self, kf: int, targets: List[int]):
        """Seek to keyframe kf and decode forward until every target pts is seen.

        Packets that fail to decode are skipped (frames after a corrupt stretch still come out);
        a target whose own packet is corrupt raises VideoDecodeError. Streams exist whose decoded
        pts are not monotonic or that drop a frame; any other target never emitted is served by
        the nearest decoded frame within two frame durations.
        """
        self._container.seek(kf, stream=self._stream, backward=True, any_frame=False)
        remaining = set(targets)
        last = targets[-1]
        best = {}  # target -> (distance, frame)
        past = 0
        corrupt = set()  # pts of packets that failed to decode: never stand in a neighbour for them

        def on_error(packet, e):
            if packet is not None and packet.pts is not None:
                corrupt.add(packet.pts)

        for f in decode_packets(self._container, self._stream, on_error):
            if f.pts is None:
                continue
            for t in targets:
                d = abs(f.pts - t)
                if t not in best or d < best[t][0]:
                    best[t] = (d, f)
            remaining.discard(f.pts)
            if not remaining:
                break
            if f.pts > last:
                past += 1
                if past > self._REORDER_SLACK:
                    break
        pts = self.info.pts
        step = (pts[-1] - pts[0]) / max(len(pts) - 1, 1)
        out = {}
        for t in targets:
            if t in corrupt and (t not in best or best[t][0] != 0):
                raise VideoDecodeError(f"{self.path}: frame at pts {t} is corrupt (its packet does not decode)")
            if t not in best or best[t][0] > 2 * step + 1:
                raise VideoDecodeError(f"{self.path}: frame at pts {t} does not decode (truncated or corrupt stream?)")
            out[t] = best[t][1]
        return out


class OpenCVReader:
    """Reads frames by index with cv2.VideoCapture (its own seeking)."""

    def __init__(self, path: str, info: VideoInfo):
        self.path = path
        self.info = info
        self._cap = None
        self._pos = None  # index of the next frame read() returns

    def close(self):
        if self._cap is not None:
            self._cap.release()
        self._cap = None

    def read(self, indices: Sequence[int], short_side: int = 0) -> List[Image.Image]:
        import cv2

        n = self.info.num_frames
        if self._cap is None:
            self._cap = cv2.VideoCapture(self.path)
            self._pos = 0
            if not self._cap.isOpened():
                self.close()
                raise VideoDecodeError(f"{self.path}: OpenCV cannot open it")
        out = {}
        for i in sorted(set(indices)):
            if not 0 <= i < n:
                raise VideoDecodeError(f"{self.path}: frame {i} out of range [0, {n})")
            if self._pos is None or i < self._pos or i - self._pos > 16:
                self._cap.set(cv2.CAP_PROP_POS_FRAMES, i)
                self._pos = i
            while self._pos < i:  # short hop: grab (no colour conversion) instead of seeking
                self._cap.grab()
                self._pos += 1
            ok, frame = self._cap.read()
            self._pos += 1
            if not ok or frame is None:
                self.close()
                raise VideoDecodeError(f"{self.path}: frame {i} does not decode")
            img = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            out[i] = resize_short_side(img, short_side)
        return [out[i] for i in indices]


def make_reader(path: str, info: VideoInfo, decoder: str = "pyav"):
    if decoder == "pyav":
        return PyAVReader(path, info)
    if decoder == "opencv":
        return OpenCVReader(path, info)
    raise ValueError(f"unknown decoder '{decoder}', expected one of {DECODERS}")


class ReaderCache:
    """A small per-process LRU of open readers (opening a container costs more than a seek)."""

    def __init__(self, capacity: int = 8):
        self.capacity = capacity
        self._readers: "OrderedDict[str, object]" = OrderedDict()
        self._pid = os.getpid()

    def get(self, path: str, info: VideoInfo, decoder: str):
        if os.getpid() != self._pid:  # forked worker: never share containers with the parent
            self._readers = OrderedDict()
            self._pid = os.getpid()
        key = f"{decoder}:{path}"
        r = self._readers.pop(key, None)
        if r is None:
            r = make_reader(path, info, decoder)
        self._readers[key] = r
        while len(self._readers) > self.capacity:
            _, old = self._readers.popitem(last=False)
            old.close()
        return r

    def __getstate__(self):  # readers hold open files: never pickle them into workers
        return {"capacity": self.capacity}

    def __setstate__(self, state):
        self.__init__(state["capacity"])


_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}  # 16-bit grey PNG/TIFF: to 8 bits as OpenCV reads them


def read_image(path: str, short_side: int = 0) -> Image.Image:
    """An RGB frame from disk; JPEGs are decoded at reduced scale when much larger than needed."""
    try:
        with Image.open(path) as img:
            if short_side and img.format == "JPEG":
                w, h = img.size
                # draft picks a DCT scale >= requested size: exact resize follows
                img.draft("RGB", _scaled_size(w, h, short_side))
            if img.mode in _SIXTEEN_BIT:  # PIL's convert clips 16-bit grey at 255 (a white frame)
                img = Image.fromarray((np.asarray(img) >> 8).astype(np.uint8), "L")
            img = img.convert("RGB")
    except Exception as e:
        raise VideoDecodeError(f"{path}: cannot read image ({type(e).__name__}: {e})") from e
    return resize_short_side(img, short_side)


def read_image_array(path: str, short_side: int = 0) -> np.ndarray:
    """An RGB frame from disk as an HxWx3 uint8 array, decoded by OpenCV (about twice as fast as
    PIL's decode plus conversion to an array)."""
    import cv2

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise VideoDecodeError(f"{path}: cannot read image ({type(e).__name__}: {e})") from e
    # OpenCV decodes a truncated JPEG with a grey bottom and only a warning (PIL refuses it):
    # a JPEG must end with its EOI marker (trailing padding allowed)
    if data[:2] == b"\xff\xd8" and b"\xff\xd9" not in data[-256:]:
        raise VideoDecodeError(f"{path}: cannot read image (truncated JPEG: no end-of-image marker)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB) if data else None
    if img is None:
        raise VideoDecodeError(f"{path}: cannot read image (OpenCV could not decode it)")
    if short_side and short_side > 0 and min(img.shape[:2]) != short_side:
        w, h = _scaled_size(img.shape[1], img.shape[0], short_side)
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if w < img.shape[1] else cv2.INTER_LINEAR)
    return img


_REORDER_WINDOW = 16  # frames held back to restore pts order


# Healthy streams may decode a frame or two fewer than their container declares, without any
# error (box.mp4 of OpenCV's samples: 456 declared, 455 decoded by FFmpeg).
PARTIAL_TOLERANCE = 2


def is_partial(decoded: int, declared: int, had_errors: bool) -> bool:
    """Whether a video that yielded ``decoded`` of ``declared`` frames counts as partly broken."""
    lost = declared - decoded
    return lost > PARTIAL_TOLERANCE or (lost > 0 and had_errors)


def decode_packets(container, stream, on_error=None):
    """Decode ``stream`` packet by packet: a packet that fails to decode (corrupt data) is
    reported to ``on_error(packet, exc)`` and skipped, so decoding goes on past a corrupt stretch
    instead of ending there. Demuxing errors (a truncated file) end the generator through
    ``on_error(None, exc)``."""
    import av

    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.FFmpegError as e:
                if on_error is not None:
                    on_error(packet, e)
                continue
            yield from frames
    except av.error.FFmpegError as e:
        if on_error is not None:
            on_error(None, e)


def decode_sequential(path: str, decoder: str = "pyav", stats: Optional[dict] = None):
    """Yield (frame_index, pts_seconds, PIL image) for every frame, in order (extraction).

    PyAV decodes packet by packet and skips corrupt ones; frame indices are positions in the
    video's pts table (as :class:`PyAVReader` counts them), so frames lost to corruption leave
    gaps instead of shifting the frames after them. ``stats`` (a dict, optional) receives
    ``decoded`` (frames yielded), ``declared`` (frames the container declares, else the number
    of packets), ``corrupt_packets`` and ``error`` (the last decoding error, or None).
    """
    stats = {} if stats is None else stats
    stats.update(decoded=0, declared=0, corrupt_packets=0, error=None)
    if decoder == "pyav":
        container, stream = _open_pyav(path)
        try:
            table, _, truncated = _demux_pts(container, stream)
            index_of = {t: i for i, t in enumerate(sorted(set(table)))}
            stats["declared"] = max(int(stream.frames or 0), len(index_of))
            if truncated:
                stats["error"] = truncated
            container.seek(0, stream=stream, backward=True, any_frame=False)
            stream.thread_type = "AUTO"
            tb = float(stream.time_base) if stream.time_base else None

            def on_error(packet, e):
                stats["error"] = f"{type(e).__name__}: {e}"
                stats["corrupt_packets"] += packet is not None

            # Some streams (e.g. H.264 with a wrong reorder depth) emit frames out of pts order:
            # a small heap restores presentation order.
            heap, seq, last = [], 0, -1

            def emit(frame):
                nonlocal last
                i = index_of.get(frame.pts, last + 1) if frame.pts is not None else last + 1
                if i <= last:  # a duplicate or a frame behind the reorder window: drop it
                    return None
                last = i
                t = frame.time if frame.time is not None else (frame.pts * tb if (frame.pts is not None and tb) else None)
                return i, t, frame

            for frame in decode_packets(container, stream, on_error):
                heapq.heappush(heap, (frame.pts if frame.pts is not None else -1, seq, frame))
                seq += 1
                if len(heap) > _REORDER_WINDOW:
                    out = emit(heapq.heappop(heap)[2])
                    if out:
                        stats["decoded"] += 1
                        yield out
            while heap:
                out = emit(heapq.heappop(heap)[2])
                if out:
                    stats["decoded"] += 1
                    yield out
            if stats["decoded"] == 0:
                raise VideoDecodeError(f"{path}: no frame decodes ({stats['error']})")
            if is_partial(stats["decoded"], stats["declared"], stats["error"] is not None):
                logging.warning(f"{path}: {stats['decoded']} of {stats['declared']} frames decoded "
                                f"({stats['corrupt_packets']} corrupt packets skipped; last error: {stats['error']})")
        finally:
            container.close()
    elif decoder == "opencv":
        import cv2

        cap = cv2.VideoCapture(path)
        if not cap.isOpened():
            raise VideoDecodeError(f"{path}: OpenCV cannot open it")
        fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
        stats["declared"] = max(int(cap.get(cv2.CAP_PROP_FRAME_COUNT)), 0)
        i = 0
        try:
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                stats["decoded"] = i + 1
                yield i, i / fps, frame
                i += 1
        finally:
            cap.release()
        if i == 0:
            raise VideoDecodeError(f"{path}: no frame decodes")
        stats["declared"] = max(stats["declared"], i)
    else:
        raise ValueError(f"unknown decoder '{decoder}', expected one of {DECODERS}")


def frame_to_pil(frame, short_side: int = 0) -> Image.Image:
    """A PyAV VideoFrame or an OpenCV BGR array as an RGB PIL image, short side resized."""
    if isinstance(frame, np.ndarray):
        import cv2

        h, w = frame.shape[:2]
        W, H = _scaled_size(w, h, short_side)
        if (W, H) != (w, h):
            frame = cv2.resize(frame, (W, H), interpolation=cv2.INTER_AREA)
        return Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    W, H = _scaled_size(frame.width, frame.height, short_side)
    if (W, H) != (frame.width, frame.height):
        return frame.reformat(width=W, height=H, format="rgb24", interpolation="AREA").to_image()
    return frame.to_image()
