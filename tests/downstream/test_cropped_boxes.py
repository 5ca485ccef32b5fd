"""Pascal Cropped Boxes / MSCOCO Boxes: counts and labels from the annotations (parsed here
independently), crop geometry, counted skips of bad input, resumability, the CLI."""
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter

import numpy as np
import pytest
from PIL import Image
from vissl_ext_testing import REPO, shared_path

from vissl_ext.downstream.cropped_boxes import VOC_CLASSES, build_coco, build_voc


def _expected_voc(voc_root, years, split):
    """(year, image id, object index, class, xmin, ymin, xmax, ymax, difficult) from the XML."""
    out = []
    for year in years:
        ids = open(os.path.join(voc_root, year, "ImageSets", "Main", f"{split}.txt")).read().split()
        for i in ids:
            root = ET.parse(os.path.join(voc_root, year, "Annotations", i + ".xml")).getroot()
            for k, o in enumerate(root.iter("object")):
                b = o.find("bndbox")
                out.append((year, i, k, o.find("name").text, *(int(float(b.find(t).text)) for t in ("xmin", "ymin", "xmax", "ymax")),
                            int(o.find("difficult").text)))
    return out


def test_voc_crops_counts_labels_and_geometry_match_the_xml(tmp_path):
    voc = shared_path("voc_mmfewshot", "VOCdevkit")
    years = ["VOC2007", "VOC2012"]
    summary = build_voc(voc, str(tmp_path), years=years, splits=["trainval"], progress=False)
    exp = _expected_voc(voc, years, "trainval")
    kept = [e for e in exp if not e[-1]]
    s = summary["splits"]["trainval"]
    assert s["crops"] == len(kept) and s["skipped"] == {"difficult": len(exp) - len(kept)}
    assert s["per_class"] == dict(Counter(e[3] for e in kept))
    # SOURCE.txt: VOC2007 objects dog 1, person 1, train 1, sofa 1, chair 6, car 7
    assert Counter(e[3] for e in exp if e[0] == "VOC2007") == {"dog": 1, "person": 1, "train": 1, "sofa": 1, "chair": 6, "car": 7}
    images = np.load(tmp_path / "trainval_images.npy")
    labels = np.load(tmp_path / "trainval_labels.npy")
    targets = np.load(tmp_path / "trainval_targets.npy")
    assert labels.shape == (len(kept), 20) and set(np.unique(labels)) == {0, 1}
    assert (labels.sum(1) == 1).all() and (labels.argmax(1) == targets).all()
    boxes = json.load(open(tmp_path / "trainval_boxes.json"))
    for (year, i, k, name, x0, y0, x1, y1, _), path, t, rec in zip(kept, images, targets, boxes):
        assert os.path.basename(path) == f"{year}_{i}_{k:02d}.jpg" and VOC_CLASSES[t] == name
        crop = np.asarray(Image.open(path).convert("RGB")).astype(float)
        assert crop.shape[:2] == (y1 - y0 + 1, x1 - x0 + 1)  # VOC corners are inclusive, 1-based
        src = np.asarray(Image.open(rec["source"]).convert("RGB")).astype(float)[y0 - 1:y1, x0 - 1:x1]
        assert np.abs(crop - src).mean() < 6  # same pixels up to JPEG re-encoding

    # min size and context padding (clipped at the image border)
    out2 = tmp_path / "ctx"
    s2 = build_voc(voc, str(out2), years=["VOC2007"], splits=["trainval"], min_size=100, context=0.1,
                   difficult="keep", progress=False)["splits"]["trainval"]
    exp07 = [e for e in exp if e[0] == "VOC2007"]
    small = [e for e in exp07 if min(e[6] - e[4] + 1, e[7] - e[5] + 1) < 100]
    assert s2["skipped"] == ({"too_small": len(small)} if small else {}) and s2["crops"] == len(exp07) - len(small)
    for rec in json.load(open(out2 / "trainval_boxes.json")):
        x0, y0, x1, y1 = rec["box"]
        w, h = Image.open(rec["source"]).size
        bw, bh = x1 - x0 + 1, y1 - y0 + 1
        expected = (min(h, int(np.ceil(y1 + 0.1 * bh))) - max(0, int(np.floor(y0 - 1 - 0.1 * bh))),
                    min(w, int(np.ceil(x1 + 0.1 * bw))) - max(0, int(np.floor(x0 - 1 - 0.1 * bw))))
        assert Image.open(rec["image"]).size[::-1] == expected


def _voc_xml(objects, size=(60, 40)):
    objs = "".join(
        f"<object><name>{n}</name><difficult>0</difficult>"
        + ("" if b is None else "<bndbox>" + "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), b)) + "</bndbox>")
        + "</object>" for n, b in objects)
    return f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height></size>{objs}</annotation>"


def test_voc_bad_input_counted_and_named_and_rerun_keeps_crops(tmp_path, caplog):
    voc = tmp_path / "VOCdevkit" / "VOC2007"
    for d in ("Annotations", "JPEGImages", "ImageSets/Main"):
        os.makedirs(voc / d)
    (voc / "ImageSets/Main/trainval.txt").write_text("a\nbroken\nnoimage\nnoxml\n")
    (voc / "Annotations/a.xml").write_text(_voc_xml([
        ("dog", (1, 1, 30, 20)),      # good
        ("dog", (10, 10, 10, 30)),    # zero width: xmax == xmin is one pixel in VOC -> kept? no: 1 px wide
        ("cat", (20, 5, 12, 30)),     # xmax < xmin: zero area
        ("unicorn", (1, 1, 5, 5)),    # not a VOC class
        ("bird", None),               # no bndbox
    ]))
    (voc / "Annotations/broken.xml").write_text("<annotation><object>")
    (voc / "Annotations/noimage.xml").write_text(_voc_xml([("cow", (1, 1, 5, 5))]))
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(voc / "JPEGImages/a.jpg")
    out = tmp_path / "out"
    s = build_voc(str(tmp_path / "VOCdevkit"), str(out), splits=["trainval"], progress=False)["splits"]["trainval"]
    assert s["crops"] == 2  # the good dog and the 1-pixel-wide dog
    assert s["skipped"] == {"zero_area": 1, "other_class": 1, "missing_field": 1, "malformed_xml": 1,
                            "missing_image": 1, "missing_annotation": 1}
    named = {(e["kind"], os.path.basename(e["file"])) for e in s["skipped_examples"]}
    assert {("malformed_xml", "broken.xml"), ("zero_area", "a.xml"), ("missing_image", "noimage.jpg"),
            ("missing_annotation", "noxml.xml")} <= named
    assert any("broken.xml" in r.message for r in caplog.records)
    first = out / "JPEGImages" / "VOC2007_a_00.jpg"
    mtime = first.stat().st_mtime_ns
    build_voc(str(tmp_path / "VOCdevkit"), str(out), splits=["trainval"], progress=False)
    assert first.stat().st_mtime_ns == mtime
    with pytest.raises(FileNotFoundError, match="test.txt"):
        build_voc(str(tmp_path / "VOCdevkit"), str(out), splits=["test"], progress=False)


def test_coco_boxes_folder_and_counted_skips(tmp_path):
    voc = shared_path("voc_mmfewshot", "VOCdevkit", "VOC2007", "JPEGImages")
    coco = {
        "images": [{"id": 1, "file_name": "000001.jpg"}, {"id": 2, "file_name": "000004.jpg"},
                   {"id": 3, "file_name": "missing.jpg"}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 10, "image_id": 1, "category_id": 18, "bbox": [47.0, 239.0, 148.0, 132.0]},
            {"id": 11, "image_id": 1, "category_id": 1, "bbox": [7.5, 10.2, 340.0, 490.0]},
            {"id": 12, "image_id": 2, "category_id": 3, "bbox": [12, 30, 60, 40]},
            {"id": 13, "image_id": 2, "category_id": 3, "bbox": [12, 30, 0, 40]},          # zero area
            {"id": 14, "image_id": 2, "category_id": 3, "bbox": [12, 30, 5, 40]},          # below min size
            {"id": 15, "image_id": 2, "category_id": 1, "bbox": [1, 1, 50, 50], "iscrowd": 1},
            {"id": 16, "image_id": 2, "category_id": 99, "bbox": [1, 1, 50, 50]},           # unknown category
            {"id": 17, "image_id": 3, "category_id": 1, "bbox": [1, 1, 50, 50]},            # missing image
            {"id": 18, "image_id": 2, "category_id": 1},                                     # no bbox
        ]}
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps(coco))
    out = tmp_path / "boxes"
    s = build_coco(str(ann), voc, str(out), min_size=8, progress=False)
    assert s["crops"] == 3 and s["per_class"] == {"dog": 1, "person": 1, "car": 1}
    assert s["skipped"] == {"zero_area": 1, "too_small": 1, "crowd": 1, "unknown_category": 1, "missing_image": 1,
                            "missing_field": 1}
    assert s["classes"] == ["car", "dog", "person"]  # the ImageFolder's order, not the category ids (18, 1, 3)
    assert Image.open(out / "images" / "dog" / "1_10.jpg").size == (148, 132)
    # COCO boxes are continuous [x, y, w, h]: floor/ceil to whole pixels, clipped to the 353x500 image
    assert Image.open(out / "images" / "person" / "1_11.jpg").size == (348 - 7, 500 - 10)
    from torchvision.datasets import ImageFolder

    folder = ImageFolder(str(out / "images"))
    assert sorted(folder.classes) == ["car", "dog", "person"] and len(folder) == 3
    assert list(np.load(out / "train_targets.npy")) == [0, 1, 2]
    # what the MoCo pretraining on MSCOCO Boxes reads (docs/linear_probes.md), through VISSL
    from vissl.data import build_dataset
    from vissl_ext_testing import compose

    cfg = compose("config=pretrain/moco/moco_1node_resnet", "config.DATA.TRAIN.DATA_SOURCES=[disk_filelist]",
                  "config.DATA.TRAIN.DATASET_NAMES=[mscoco_boxes]", f"config.DATA.TRAIN.DATA_PATHS=[{out}/train_images.npy]",
                  f"config.DATA.TRAIN.LABEL_PATHS=[{out}/train_targets.npy]")
    ds = build_dataset(cfg, "TRAIN")
    assert len(ds) == 3 and [tuple(v.shape) for v in ds[1]["data"]] == [(3, 224, 224)] * 2  # MoCo's two views


@pytest.mark.slow
def test_cli(tmp_path):
    voc = shared_path("voc_mmfewshot", "VOCdevkit")
    tool = os.path.join(REPO, "tools", "build_cropped_boxes.py")
    p = subprocess.run([sys.executable, tool, "voc", voc, "--out", str(tmp_path / "o"), "--splits", "test",
                        "--no-progress", "--classes", "car,chair"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    s = json.loads(p.stdout)["test"]
    assert s["per_class"] == {"car": 7, "chair": 4} and s["skipped"] == {"other_class": 4, "difficult": 2}
    assert np.load(tmp_path / "o" / "test_labels.npy").shape == (11, 2)
    p = subprocess.run([sys.executable, tool, "coco", str(tmp_path / "none.json"), "--images", ".", "--out",
                        str(tmp_path / "c")], capture_output=True, text=True)
    assert p.returncode == 2 and "none.json" in p.stderr


def test_coco_lists_and_image_folder_give_each_crop_the_same_label(tmp_path):
    """A small COCO JSON on real VOC images, with category ids in another order than the names
    (and a category without crops): train_targets/labels.npy, the ImageFolder tree and the class
    list must agree on every crop, and the label must be the annotation's category."""
    from torchvision.datasets import ImageFolder

    voc = shared_path("voc_mmfewshot", "VOCdevkit", "VOC2007", "JPEGImages")
    files = sorted(os.listdir(voc))[:4]
    cats = [{"id": 1, "name": "zebra"}, {"id": 2, "name": "apple"}, {"id": 7, "name": "Mango"},
            {"id": 9, "name": "no crops"}, {"id": 11, "name": "cat"}]
    anns, cid_of = [], {}
    for i, _ in enumerate(files):
        for j, cid in enumerate([1, 2, 7, 11][i:] + [1, 2, 7, 11][:i]):
            aid = 100 + 10 * i + j
            anns.append({"id": aid, "image_id": i + 1, "category_id": cid, "bbox": [5 + 7 * j, 9 + 3 * j, 40 + 5 * j, 30 + j]})
            cid_of[f"{i + 1}_{aid}.jpg"] = cid
    coco = {"images": [{"id": i + 1, "file_name": f} for i, f in enumerate(files)], "categories": cats, "annotations": anns}
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    out = tmp_path / "boxes"
    s = build_coco(str(tmp_path / "instances.json"), voc, str(out), progress=False)
    assert s["crops"] == 16
    names = {c["id"]: c["name"] for c in cats}

    folder = ImageFolder(str(out / "images"))
    paths = [str(p) for p in np.load(out / "train_images.npy")]
    targets = np.load(out / "train_targets.npy")
    labels = np.load(out / "train_labels.npy")
    assert folder.classes == s["class_folders"] and len(s["classes"]) == 4 == labels.shape[1]
    # row i of the lists is sample i of the ImageFolder (disk_folder + LABEL_PATHS pairs them by row)
    assert [p for p, _ in folder.samples] == paths
    assert [t for _, t in folder.samples] == targets.tolist() == labels.argmax(1).tolist()
    for p, t in zip(paths, targets):
        assert s["classes"][t] == names[cid_of[os.path.basename(p)]]  # the annotation's own category
