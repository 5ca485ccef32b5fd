"""Reading a manifest entry's frames as stored (the frames the tracks' boxes refer to)."""
from typing import Iterator, Optional, Sequence, Tuple

from PIL import Image

from vissl_ext.video.manifest import VideoEntry
from vissl_ext.video.video_io import ReaderCache, VideoDecodeError, read_image

_READERS = ReaderCache(capacity=2)


def iter_frames(entry: VideoEntry, positions: Sequence[int], decoder: str = "pyav",
                chunk: int = 32) -> Iterator[Tuple[int, Optional[Image.Image], Optional[str]]]:
    """Yield (position, RGB image or None, error or None) in order. An unreadable frame yields
    None with the reason (callers count and skip it); the rest of the video still reads."""
    positions = list(positions)
    if entry.is_frame_folder:
        for p in positions:
            try:
                yield p, read_image(entry.frame_path(p)), None
            except VideoDecodeError as e:
                yield p, None, str(e)
        return
    decoder = entry.extra.get("decoder", decoder)
    for s in range(0, len(positions), chunk):
        part = positions[s: s + chunk]
        try:
            reader = _READERS.get(entry.source, entry.video_info(), decoder)
            imgs = reader.read([entry.frame_indices[p] for p in part])
            yield from ((p, im, None) for p, im in zip(part, imgs))
        except VideoDecodeError:
            for p in part:  # find the broken frame(s); the others still count
                try:
                    reader = _READERS.get(entry.source, entry.video_info(), decoder)
                    yield p, reader.read([entry.frame_indices[p]])[0], None
                except VideoDecodeError as e:
                    yield p, None, str(e)

