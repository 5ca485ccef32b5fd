"""The DAVIS layout: ``<root>/JPEGImages/480p/<seq>/*.jpg`` and ``<root>/Annotations/480p/<seq>/*.png``
(DAVIS 2017: palette PNGs whose indices are object ids; DAVIS 2016: binary masks, 0 and 255),
palette PNGs of predicted label maps, and an overlay strip to look at a propagation."""
import glob
import os
from typing import List

import numpy as np

from vissl_ext.utils.atomic_io import atomic_open


class DavisLayoutError(ValueError):
    """A DAVIS root, sequence or annotation that cannot be read as the layout says."""


def sequences(root: str, resolution: str = "480p") -> List[str]:
    d = os.path.join(root, "JPEGImages", resolution)
    if not os.path.isdir(d):
        raise DavisLayoutError(f"{root}: no JPEGImages/{resolution}/ folder (expected the DAVIS layout "
                               f"JPEGImages/{resolution}/<seq>/*.jpg, Annotations/{resolution}/<seq>/*.png)")
    seqs = sorted(s for s in os.listdir(d) if os.path.isdir(os.path.join(d, s)))
    if not seqs:
        raise DavisLayoutError(f"{d}: no sequence folders")
    return seqs


def frame_paths(root: str, seq: str, resolution: str = "480p") -> List[str]:
    paths = sorted(glob.glob(os.path.join(root, "JPEGImages", resolution, seq, "*.jpg")))
    if not paths:
        raise DavisLayoutError(f"{os.path.join(root, 'JPEGImages', resolution, seq)}: no .jpg frames")
    return paths


def annotation_path(root: str, seq: str, frame_path: str, resolution: str = "480p") -> str:
    stem = os.path.splitext(os.path.basename(frame_path))[0]
    return os.path.join(root, "Annotations", resolution, seq, stem + ".png")


def read_labels(path: str) -> np.ndarray:
    """[H, W] integer object ids (0 background) of an annotation PNG: palette indices, or for a
    binary mask (values 0 and 255 only) object 1."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            mode, arr = im.mode, np.asarray(im)
    except (OSError, UnidentifiedImageError) as e:
        raise DavisLayoutError(f"{path}: unreadable annotation ({e})") from None
    if mode == "P":
        return arr.astype(np.int64)
    if arr.ndim == 3:
        raise DavisLayoutError(f"{path}: a colour annotation ({mode}); DAVIS annotations are palette or grey PNGs")
    values = set(np.unique(arr).tolist())
    if values <= {0, 255} or values <= {0, 1}:
        return (arr > 0).astype(np.int64)
    return arr.astype(np.int64)  # grey PNGs holding object ids directly


def davis_palette() -> List[int]:
    """The DAVIS colour palette (the PASCAL VOC one): object i gets the bits of i spread over RGB."""
    pal = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal += [r, g, b]
    return pal


def write_labels(path: str, labels: np.ndarray):
    """A palette PNG of object ids (atomically), as DAVIS stores its annotations."""
    from PIL import Image

    if labels.min() < 0 or labels.max() > 255:
        raise ValueError(f"{path}: object ids must lie in 0..255, got {labels.min()}..{labels.max()}")
    im = Image.fromarray(labels.astype(np.uint8), mode="P")
    im.putpalette(davis_palette())
    with atomic_open(path, "wb") as f:
        im.save(f, format="PNG")


def overlay_strip(frames: List[np.ndarray], labels: List[np.ndarray], path: str, columns: int = 6,
                  height: int = 160, alpha: float = 0.5):
    """Frames with their label maps blended in (object colours of the DAVIS palette), in one PNG."""
    import cv2
    from PIL import Image

    pal = np.array(davis_palette(), np.uint8).reshape(256, 3)
    tiles = []
    for img, lab in zip(frames, labels):
        colour = pal[lab.clip(0, 255)]
        blend = np.where(lab[..., None] > 0, (1 - alpha) * img + alpha * colour, img).astype(np.uint8)
        w = round(img.shape[1] * height / img.shape[0])
        tiles.append(cv2.resize(blend, (w, height), interpolation=cv2.INTER_AREA))
    if not tiles:
        raise ValueError("no frames to draw")
    rows = [tiles[i:i + columns] for i in range(0, len(tiles), columns)]
    width = max(sum(t.shape[1] for t in r) for r in rows)
    canvas = np.full((height * len(rows), width, 3), 255, np.uint8)
    for ri, r in enumerate(rows):
        x = 0
        for t in r:
            canvas[ri * height:(ri + 1) * height, x:x + t.shape[1]] = t
            x += t.shape[1]
    with atomic_open(path, "wb") as f:
        Image.fromarray(canvas).save(f, format="PNG")
