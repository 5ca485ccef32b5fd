"""Pictures of tracks: coloured boxes with track ids drawn on the frames (PNG strip or GIF)."""
import colorsys
from dataclasses import dataclass
from typing import List, Optional, Sequence

from PIL import Image, ImageDraw

from vissl_ext.video.manifest import VideoEntry
from vissl_ext.tracking.frames import iter_frames
from vissl_ext.utils.atomic_io import atomic_open


@dataclass
class DrawParams:
    """What a picture of one video's tracks shows (tools/visualize_tracks.py's flags)."""

    format: str = "png"  # png: a strip of evenly spaced frames that carry boxes; gif: consecutive frames
    num_frames: int = 8  # frames per strip / GIF
    max_tracks: int = 20  # draw the longest N tracks
    min_len: int = 2  # skip tracks shorter than this
    columns: int = 8  # PNG strip: frames per row
    fps: float = 4.0  # GIF frame rate


def track_colour(tid: int):
    """A distinct, stable colour per track id (golden-ratio hue steps)."""
    r, g, b = colorsys.hsv_to_rgb((tid * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def select_tracks(doc: dict, max_tracks: int = 20, min_len: int = 2) -> List[dict]:
    """The longest tracks first (they show the tracker best), at most max_tracks."""
    ts = [t for t in doc["tracks"] if len(t["frames"]) >= min_len]
    return sorted(ts, key=lambda t: (-len(t["frames"]), t["id"]))[:max_tracks]


def choose_positions(tracks: Sequence[dict], num_frames: int, count: int) -> List[int]:
    """Up to ``count`` evenly spaced positions among the frames that carry a drawn box."""
    pos = sorted({p for t in tracks for p in t["frames"]})
    if not pos:
        return list(range(min(count, num_frames)))
    if len(pos) <= count:
        return pos
    return [pos[round(i * (len(pos) - 1) / (count - 1))] for i in range(count)] if count > 1 else pos[:1]


def draw_frames(entry: VideoEntry, tracks: Sequence[dict], positions: Sequence[int], decoder: str = "pyav",
                width: int = 3) -> List[Image.Image]:
    """Frames at ``positions`` with every track's box on them (unreadable frames: grey)."""
    boxes_at = {}
    for t in tracks:
        for p, b in zip(t["frames"], t["boxes"]):
            boxes_at.setdefault(p, []).append((t["id"], b))
    out = []
    for p, img, err in iter_frames(entry, positions, decoder):
        img = img.copy() if img is not None else Image.new("RGB", (entry.width or 64, entry.height or 64), (90, 90, 90))
        d = ImageDraw.Draw(img)
        for tid, (x1, y1, x2, y2) in boxes_at.get(p, []):
            c = track_colour(tid)
            d.rectangle([x1, y1, x2, y2], outline=c, width=width)
            d.text((x1 + 3, y1 + 1), str(tid), fill=c)
        d.text((4, 4), f"#{p}", fill=(255, 255, 255))
        out.append(img)
    return out


def save_strip(frames: Sequence[Image.Image], path: str, columns: int = 8):
    w, h = frames[0].size
    cols = min(columns, len(frames))
    rows = (len(frames) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * w, rows * h), (0, 0, 0))
    for i, f in enumerate(frames):
        sheet.paste(f, ((i % cols) * w, (i // cols) * h))
    with atomic_open(path, "wb") as fh:
        sheet.save(fh, format="PNG")


def save_gif(frames: Sequence[Image.Image], path: str, fps: float = 4.0):
    with atomic_open(path, "wb") as fh:
        frames[0].save(fh, format="GIF", save_all=True, append_images=list(frames[1:]), duration=int(1000 / fps), loop=0)


def visualize_video(entry: VideoEntry, doc: dict, path: str, p: DrawParams = DrawParams(),
                    decoder: str = "pyav") -> Optional[str]:
    tracks = select_tracks(doc, p.max_tracks, p.min_len)
    if p.format == "gif":
        first = min((t["frames"][0] for t in tracks), default=0)
        last = max((t["frames"][-1] for t in tracks), default=entry.num_frames - 1)
        positions = list(range(first, last + 1))[: max(p.num_frames, 2)]
    else:
        positions = choose_positions(tracks, entry.num_frames, p.num_frames)
    frames = draw_frames(entry, tracks, positions, decoder)
    if not frames:
        return None
    (save_gif(frames, path, p.fps) if p.format == "gif" else save_strip(frames, path, p.columns))
    return path
