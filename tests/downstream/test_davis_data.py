"""The DAVIS layout on the shared DAVIS-2016 sequences: binary masks read as object 1, palette
PNGs round-trip, bad roots and annotations are clear errors."""
import numpy as np
import pytest
from PIL import Image

from vissl_ext.downstream import davis_data as dd
from vissl_ext_testing import shared_path


def test_shared_sequences_read():
    root = shared_path("video_davis2016_sample")
    assert dd.sequences(root) == ["car-shadow", "motocross-jump"]
    frames = dd.frame_paths(root, "car-shadow")
    assert len(frames) == 40
    lab = dd.read_labels(dd.annotation_path(root, "car-shadow", frames[0]))
    raw = np.asarray(Image.open(dd.annotation_path(root, "car-shadow", frames[0])))
    assert lab.shape == (480, 854) and set(np.unique(lab)) == {0, 1}
    np.testing.assert_array_equal(lab, (raw > 0).astype(int))  # 255 is object 1


def test_palette_labels_round_trip(tmp_path):
    labels = np.zeros((30, 40), np.int64)
    labels[5:15, 5:20], labels[18:28, 22:38] = 1, 3
    dd.write_labels(str(tmp_path / "a.png"), labels)
    with Image.open(tmp_path / "a.png") as im:
        assert im.mode == "P" and im.getpalette()[3:6] == [128, 0, 0]  # DAVIS/VOC: object 1 is dark red
    np.testing.assert_array_equal(dd.read_labels(str(tmp_path / "a.png")), labels)


def test_bad_input(tmp_path):
    with pytest.raises(dd.DavisLayoutError, match="JPEGImages/480p"):
        dd.sequences(str(tmp_path))
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(dd.DavisLayoutError, match="unreadable annotation"):
        dd.read_labels(str(tmp_path / "bad.png"))
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb.png")
    with pytest.raises(dd.DavisLayoutError, match="colour annotation"):
        dd.read_labels(str(tmp_path / "rgb.png"))


def test_overlay_strip(tmp_path):
    frames = [np.full((48, 64, 3), 100, np.uint8) for _ in range(3)]
    labels = [np.zeros((48, 64), np.int64) for _ in range(3)]
    labels[1][10:20, 10:20] = 1
    dd.overlay_strip(frames, labels, str(tmp_path / "s.png"), columns=2, height=24)
    out = np.asarray(Image.open(tmp_path / "s.png"))
    assert out.shape == (48, 64, 3)  # two rows of 24 px, two 32-px tiles in the first
    assert (out[:24, 32:] != 100).any() and (out[:24, :32] == 100).all()  # only the labelled frame is tinted
