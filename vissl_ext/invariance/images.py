"""Reading one RIS image: decode, crop the box (before any resize, as the public code)."""
from typing import Optional, Sequence

from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


class RISImageError(IOError):
    pass


def box_inside(box: Sequence[float], width: int, height: int) -> bool:
    """Whether an [x, y, w, h] box overlaps the image at all (partial overlap is cropped with
    black padding, as torchvision's crop in the public code)."""
    x, y, w, h = box
    return w > 0 and h > 0 and x < width and y < height and x + w > 0 and y + h > 0


def load_ris_image(path: str, box: Optional[Sequence[float]] = None) -> Image.Image:
    """RGB image, cropped to ``box`` = [x, y, w, h] when given."""
    import torchvision.transforms.functional as TF

    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            img = img.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise RISImageError(f"{path}: cannot read the image ({e}); remove it from the manifest or rebuild "
                            "the manifest with tools/build_ris_trajectories.py (which skips unreadable images)") from e
    if box is None:
        return img
    if not box_inside(box, *img.size):
        raise RISImageError(f"{path}: box {list(box)} lies outside the {img.size[0]}x{img.size[1]} image; "
                            "fix the box or drop the entry (the builders drop such boxes)")
    x, y, w, h = box
    return TF.crop(img, y, x, h, w)


def verify_image(path: str, box: Optional[Sequence[float]] = None, full: bool = False) -> Optional[str]:
    """None if the image opens (header, or full decode) and the box overlaps it; else why not."""
    try:
        with Image.open(path) as img:
            size = img.size
            if full:
                img.load()
    except Exception as e:  # noqa: BLE001  (any decoder error means: unusable)
        return f"unreadable ({type(e).__name__}: {e})"
    if box is not None and not box_inside(box, *size):
        return f"box {list(box)} outside the {size[0]}x{size[1]} image"
    return None
