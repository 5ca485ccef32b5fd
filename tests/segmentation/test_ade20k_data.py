"""ADE20K preparation: label mapping as detectron2's prepare_ade20k_sem_seg.py, bad pairs skipped."""
import os
import shutil

import numpy as np
import pytest
from PIL import Image
from vissl_ext_testing import shared_path

from vissl_ext.segmentation import ade20k

# from ../shared/data/ade20k_sceneparsing/SOURCE.txt (raw ADE labels present per image)
PRESENT = {"ADE_val_00000001": {0, 1, 2, 3, 5, 7, 10, 18}, "ADE_val_00000002": {0, 1, 2, 3, 5, 14, 18},
           "ADE_val_00000003": {0, 1, 2, 3, 5, 7, 12, 21, 44, 81, 88, 97, 103}}


def test_prepare_maps_0_to_ignore_and_k_to_k_minus_1(tmp_path):
    root = shared_path("ade20k_sceneparsing", "ADEChallengeData2016")
    manifests = ade20k.prepare(os.path.dirname(root), str(tmp_path), progress=False)
    assert list(manifests) == ["validation"]
    recs = manifests["validation"]["records"]
    assert sorted(r["image_id"] for r in recs) == sorted(PRESENT)
    for r in recs:
        raw = np.asarray(Image.open(os.path.join(root, "annotations", "validation", r["image_id"] + ".png")))
        got = np.asarray(Image.open(r["sem_seg_file_name"]))
        assert got.shape == raw.shape == (r["height"], r["width"])
        assert set(np.unique(raw).tolist()) == PRESENT[r["image_id"]]
        expected = np.where(raw == 0, 255, raw.astype(int) - 1)  # detectron2: `img - 1` on uint8
        np.testing.assert_array_equal(got, expected)
    assert ade20k.load_records(str(tmp_path / "validation.json")) == recs


def _write_pair(root, split, stem, label, size=None):
    os.makedirs(os.path.join(root, "images", split), exist_ok=True)
    os.makedirs(os.path.join(root, "annotations", split), exist_ok=True)
    h, w = size or label.shape
    Image.fromarray(np.zeros((h, w, 3), np.uint8)).save(os.path.join(root, "images", split, stem + ".jpg"))
    if label is not None:
        Image.fromarray(label).save(os.path.join(root, "annotations", split, stem + ".png"))


def test_bad_pairs_are_counted_skips_or_strict_errors_naming_the_file(tmp_path, caplog):
    root = tmp_path / "ADEChallengeData2016"
    good = np.arange(150 * 2, dtype=np.int64).reshape(10, 30) % 151
    _write_pair(root, "training", "good", good.astype(np.uint8))
    _write_pair(root, "training", "nolabel", np.zeros((4, 4), np.uint8))
    os.remove(root / "annotations" / "training" / "nolabel.png")
    _write_pair(root, "training", "wrongsize", np.zeros((8, 8), np.uint8), size=(9, 8))
    _write_pair(root, "training", "outofrange", np.full((5, 5), 200, np.uint8))
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(root / "annotations" / "training" / "rgb.png")
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(root / "images" / "training" / "rgb.jpg")
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(root / "annotations" / "training" / "orphan.png")
    out = tmp_path / "prep"
    m = ade20k.prepare_split(str(tmp_path), "training", str(out), progress=False)
    assert [r["image_id"] for r in m["records"]] == ["good"]
    assert m["skipped"] == {"missing_label": 1, "size_mismatch": 1, "out_of_range": 1, "not_single_channel": 1}
    assert m["orphan_labels"] == 1 and m["num_images"] == 5
    assert any("outofrange.png" in r.message and "200" in r.message for r in caplog.records)
    np.testing.assert_array_equal(np.asarray(Image.open(m["records"][0]["sem_seg_file_name"])),
                                  np.where(good == 0, 255, good - 1))
    # resumable: an existing prepared PNG is kept, not rewritten
    done = out / "annotations_detectron2" / "training" / "good.png"
    mtime = done.stat().st_mtime_ns
    ade20k.prepare_split(str(root), "training", str(out), progress=False)
    assert done.stat().st_mtime_ns == mtime
    with pytest.raises(ade20k.ADE20KDataError, match=r"nolabel\.png: missing label PNG"):
        ade20k.prepare_split(str(root), "training", str(tmp_path / "strict"), strict=True, progress=False)
    shutil.rmtree(root / "images")
    with pytest.raises(ade20k.ADE20KDataError, match="no images/ folder"):
        ade20k.prepare(str(root), str(out))
