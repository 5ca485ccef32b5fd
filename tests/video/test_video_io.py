"""Frame files of every PNG flavour read the same by the PIL reader (AUGMENT_BACKEND=host) and the
OpenCV array reader (fast/device: VIDEO.FRAME_ARRAYS), so switching backends keeps the pixels."""
import cv2
import numpy as np
import pytest
from PIL import Image

from vissl_ext.video.video_io import read_image, read_image_array


def _write(path, kind, a):
    if kind == "gray16":  # was clipped at 255 by PIL's convert('RGB'): a white frame on the host path
        cv2.imwrite(str(path), a[..., 0].astype(np.uint16) * 257)
    elif kind == "rgb16":
        cv2.imwrite(str(path), a[..., :3].astype(np.uint16) * 257)
    else:
        mode = {"rgba": "RGBA", "gray": "L", "gray_alpha": "LA"}[kind]
        Image.fromarray(a[..., :len(mode)] if len(mode) > 1 else a[..., 0], mode).save(path)


@pytest.mark.parametrize("kind", ["gray16", "rgb16", "rgba", "gray", "gray_alpha"])
def test_both_readers_give_the_same_rgb_frame(tmp_path, kind):
    a = np.random.default_rng(0).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    path = tmp_path / f"{kind}.png"
    _write(path, kind, a)
    pil, arr = np.asarray(read_image(str(path))), read_image_array(str(path))
    assert pil.shape == arr.shape == (20, 30, 3) and pil.dtype == arr.dtype == np.uint8
    np.testing.assert_array_equal(pil, arr)
    if kind == "gray16":  # and the right pixels: the 8-bit values written, on all three channels
        np.testing.assert_array_equal(pil, np.repeat(a[..., :1], 3, axis=2))
