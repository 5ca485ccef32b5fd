"""Dataset-bias sets of the paper's Table 2: every annotated box cropped into a one-object image.

* **Pascal Cropped Boxes** (:func:`build_voc`): from VOCdevkit XML, for the VOC07 SVM benchmark.
  Writes ``<out>/<split>_images.npy`` (image paths) and ``<split>_labels.npy`` (N x C, 1 = the
  object's class, 0 = absent: the label format of VISSL's VOC07 files, read by its
  ``disk_filelist`` source and SVM trainer), ``<split>_targets.npy`` (class index, for linear
  softmax probes) and ``<split>_boxes.json`` (source image, box, class of every crop).
* **MSCOCO Boxes** (:func:`build_coco`): from a COCO instances JSON, an ImageFolder-style tree
  ``<out>/images/<category>/<image id>_<annotation id>.jpg`` for pretraining (VISSL
  ``disk_folder``), plus ``<out>/train_images.npy`` / ``train_targets.npy`` / ``train_labels.npy``
  in the ImageFolder's order: classes sorted by folder name (not by COCO category id), samples
  sorted by folder then file name, so the lists and the folder pair each image with the same
  label. ``summary.json`` lists the classes in target order (``classes``, ``class_folders``).

Options: ``min_size`` (boxes with a side below it, in pixels, are skipped), ``context`` (each side
grows by this fraction of the box size, clipped to the image). Bad input is skipped, counted by
kind in ``summary.json`` and logged with the file: malformed XML/JSON entries, missing fields,
zero-area boxes, unknown classes, missing images. Crops are written atomically and kept on a
rerun (resumable); lists and summaries are written atomically at the end.
"""
import json
import logging
import math
import os
import xml.etree.ElementTree as ET
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from vissl_ext.utils.atomic_io import atomic_open, write_json_atomic

logger = logging.getLogger(__name__)

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
               "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
               "train", "tvmonitor")


class Skips:
    """Counted skips by kind, each logged with its file (first 1000 kept for summary.json)."""

    def __init__(self):
        self.counts: Counter = Counter()
        self.examples: List[Dict] = []

    def add(self, kind: str, file: str, detail: str = ""):
        self.counts[kind] += 1
        if len(self.examples) < 1000:
            self.examples.append({"kind": kind, "file": file, "detail": detail})
        logger.warning(f"{file}: {kind}{': ' + detail if detail else ''}: skipped")


def expand_box(box: Tuple[float, float, float, float], context: float, width: int, height: int):
    """Pixel crop (left, top, right, bottom), right/bottom exclusive, of a 0-based continuous box
    grown by ``context`` x its size on each side and clipped to the image."""
    x0, y0, x1, y1 = box
    dw, dh = (x1 - x0) * context, (y1 - y0) * context
    left = max(0, int(math.floor(x0 - dw)))
    top = max(0, int(math.floor(y0 - dh)))
    right = min(width, int(math.ceil(x1 + dw)))
    bottom = min(height, int(math.ceil(y1 + dh)))
    return left, top, right, bottom


def _save_crop(image: Image.Image, crop, path: str, quality: int):
    if os.path.isfile(path):  # resumable: written atomically by an earlier run
        return
    with atomic_open(path, "wb") as f:
        image.crop(crop).save(f, format="JPEG", quality=quality)


# ---------------------------------------------------------------------------------------- VOC
def parse_voc_xml(path: str, skips: Skips) -> Optional[List[Dict]]:
    """Objects of one VOC annotation: dicts with name, difficult, truncated, box (1-based, inclusive).
    None when the file cannot be read (counted); objects with missing fields are counted skips."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        skips.add("malformed_xml", path, str(e))
        return None
    objects = []
    for i, obj in enumerate(root.findall("object")):
        name = obj.findtext("name")
        bb = obj.find("bndbox")
        coords = [bb.findtext(k) if bb is not None else None for k in ("xmin", "ymin", "xmax", "ymax")]
        if not name or any(c is None for c in coords):
            skips.add("missing_field", path, f"object {i}: needs name and bndbox/xmin,ymin,xmax,ymax")
            continue
        try:
            xmin, ymin, xmax, ymax = (float(c) for c in coords)
        except ValueError:
            skips.add("missing_field", path, f"object {i}: non-numeric bndbox {coords}")
            continue
        objects.append({"index": i, "name": name.strip(), "difficult": int(obj.findtext("difficult") or 0),
                        "truncated": int(obj.findtext("truncated") or 0), "box": (xmin, ymin, xmax, ymax)})
    return objects


def _voc_ids(voc_root: str, year: str, split: str) -> List[str]:
    ids_file = os.path.join(voc_root, year, "ImageSets", "Main", f"{split}.txt")
    if not os.path.isfile(ids_file):
        raise FileNotFoundError(f"{ids_file}: no such image set (expected VOCdevkit/{year}/ImageSets/Main/{split}.txt)")
    with open(ids_file) as f:
        return [line.split()[0] for line in f if line.strip()]


def build_voc(voc_root: str, out_dir: str, years: Sequence[str] = ("VOC2007",), splits: Sequence[str] = ("trainval", "test"),
              classes: Sequence[str] = VOC_CLASSES, min_size: float = 0, context: float = 0.0,
              difficult: str = "skip", quality: int = 95, progress: bool = True) -> Dict:
    """Pascal Cropped Boxes for each split (over all ``years``); returns the summary."""
    from tqdm import tqdm

    if difficult not in ("skip", "keep"):
        raise ValueError(f"difficult={difficult!r}: use 'skip' or 'keep'")
    cls_index = {c: i for i, c in enumerate(classes)}
    img_dir = os.path.join(out_dir, "JPEGImages")
    os.makedirs(img_dir, exist_ok=True)
    summary = {"classes": list(classes), "min_size": min_size, "context": context, "difficult": difficult, "splits": {}}
    for split in splits:
        skips = Skips()
        records = []
        todo = [(year, i) for year in years for i in _voc_ids(voc_root, year, split)]
        for year, image_id in tqdm(todo, desc=f"VOC {split}", unit="img", disable=not progress):
            xml = os.path.join(voc_root, year, "Annotations", image_id + ".xml")
            if not os.path.isfile(xml):
                skips.add("missing_annotation", xml)
                continue
            objects = parse_voc_xml(xml, skips)
            if not objects:
                continue
            jpg = os.path.join(voc_root, year, "JPEGImages", image_id + ".jpg")
            if not os.path.isfile(jpg):
                skips.add("missing_image", jpg, f"{len(objects)} objects")
                continue
            with Image.open(jpg) as im:
                im = im.convert("RGB")
                for obj in objects:
                    xmin, ymin, xmax, ymax = obj["box"]
                    where = f"object {obj['index']} ({obj['name']})"
                    if obj["name"] not in cls_index:
                        skips.add("other_class", xml, where)
                        continue
                    if obj["difficult"] and difficult == "skip":
                        skips.add("difficult", xml, where)
                        continue
                    # VOC boxes are 1-based with inclusive corners: pixels xmin-1 .. xmax-1
                    box = (xmin - 1, ymin - 1, xmax, ymax)
                    w, h = box[2] - box[0], box[3] - box[1]
                    if w <= 0 or h <= 0:
                        skips.add("zero_area", xml, f"{where} bndbox {obj['box']}")
                        continue
                    if min(w, h) < min_size:
                        skips.add("too_small", xml, f"{where} {w:g}x{h:g} < {min_size:g}")
                        continue
                    crop = expand_box(box, context, *im.size)
                    if crop[2] <= crop[0] or crop[3] <= crop[1]:
                        skips.add("zero_area", xml, f"{where} bndbox {obj['box']} outside the {im.size} image")
                        continue
                    path = os.path.abspath(os.path.join(img_dir, f"{year}_{image_id}_{obj['index']:02d}.jpg"))
                    _save_crop(im, crop, path, quality)
                    records.append({"image": path, "source": jpg, "class": obj["name"], "target": cls_index[obj["name"]],
                                    "box": list(obj["box"]), "crop": list(crop), "difficult": obj["difficult"]})
        _write_lists(out_dir, split, records, len(classes))
        summary["splits"][split] = {"crops": len(records), "source_images": len(todo),
                                    "per_class": dict(Counter(r["class"] for r in records)),
                                    "skipped": dict(skips.counts), "skipped_examples": skips.examples}
        logger.info(f"Pascal Cropped Boxes {split}: {len(records)} crops, skipped {dict(skips.counts)}")
    write_json_atomic(os.path.join(out_dir, "summary.json"), summary, indent=1)
    return summary


def _write_lists(out_dir: str, split: str, records: List[Dict], num_classes: int):
    paths = np.array([r["image"] for r in records])
    targets = np.array([r["target"] for r in records], dtype=np.int64)
    labels = np.zeros((len(records), num_classes), dtype=np.int64)
    labels[np.arange(len(records)), targets] = 1
    for name, arr in (("images", paths), ("labels", labels), ("targets", targets)):
        with atomic_open(os.path.join(out_dir, f"{split}_{name}.npy"), "wb") as f:
            np.save(f, arr)
    write_json_atomic(os.path.join(out_dir, f"{split}_boxes.json"), records)


# --------------------------------------------------------------------------------------- COCO
def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def build_coco(annotations: str, image_dir: str, out_dir: str, min_size: float = 0, context: float = 0.0,
               skip_crowd: bool = True, quality: int = 95, progress: bool = True) -> Dict:
    """MSCOCO Boxes: every instance box of ``annotations`` cropped into ``<out>/images/<category>/``."""
    from tqdm import tqdm

    try:
        with open(annotations) as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{annotations}: not a readable COCO JSON ({e})") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise ValueError(f"{annotations}: missing list '{key}' (expected a COCO instances file)")
    skips = Skips()
    cats = {}
    for c in data["categories"]:
        if "id" not in c or "name" not in c:
            skips.add("missing_field", annotations, f"category {c}")
            continue
        cats[c["id"]] = c["name"]
    folder_of = {cid: _safe_name(name) for cid, name in cats.items()}
    clash = Counter(folder_of.values())
    for cid, folder in folder_of.items():
        if clash[folder] > 1:
            raise ValueError(f"{annotations}: categories {sorted(c for c in cats if folder_of[c] == folder)} "
                             f"would share the folder '{folder}'")
    images = {}
    for im in data["images"]:
        if "id" not in im or "file_name" not in im:
            skips.add("missing_field", annotations, f"image entry {im}")
            continue
        images[im["id"]] = im
    by_image: Dict[int, List[Dict]] = {}
    for ann in data["annotations"]:
        bbox, iid, cid = ann.get("bbox"), ann.get("image_id"), ann.get("category_id")
        where = f"annotation {ann.get('id')}"
        if not isinstance(bbox, (list, tuple)) or len(bbox) != 4 or iid is None or cid is None or "id" not in ann:
            skips.add("missing_field", annotations, f"{where}: needs id, image_id, category_id and bbox [x, y, w, h]")
        elif iid not in images:
            skips.add("unknown_image", annotations, f"{where}: image_id {iid}")
        elif cid not in cats:
            skips.add("unknown_category", annotations, f"{where}: category_id {cid}")
        elif skip_crowd and ann.get("iscrowd", 0):
            skips.add("crowd", annotations, where)
        elif bbox[2] <= 0 or bbox[3] <= 0:
            skips.add("zero_area", annotations, f"{where}: bbox {bbox}")
        elif min(bbox[2], bbox[3]) < min_size:
            skips.add("too_small", annotations, f"{where}: {bbox[2]:g}x{bbox[3]:g} < {min_size:g}")
        else:
            by_image.setdefault(iid, []).append(ann)
    records = []
    for iid in tqdm(sorted(by_image), desc="COCO boxes", unit="img", disable=not progress):
        path = os.path.join(image_dir, images[iid]["file_name"])
        if not os.path.isfile(path):
            skips.add("missing_image", path, f"{len(by_image[iid])} boxes")
            continue
        with Image.open(path) as im:
            im = im.convert("RGB")
            for ann in by_image[iid]:
                x, y, w, h = ann["bbox"]
                crop = expand_box((x, y, x + w, y + h), context, *im.size)
                if crop[2] <= crop[0] or crop[3] <= crop[1]:
                    skips.add("zero_area", path, f"annotation {ann['id']}: bbox {ann['bbox']} outside the image")
                    continue
                name = cats[ann["category_id"]]
                folder = os.path.join(out_dir, "images", folder_of[ann["category_id"]])
                os.makedirs(folder, exist_ok=True)
                out = os.path.abspath(os.path.join(folder, f"{iid}_{ann['id']}.jpg"))
                _save_crop(im, crop, out, quality)
                records.append({"image": out, "source": path, "class": name, "category_id": ann["category_id"],
                                "box": list(ann["bbox"]), "crop": list(crop), "annotation_id": ann["id"]})
    # torchvision's ImageFolder (VISSL disk_folder): classes = the folders, sorted by name (only
    # those holding a crop); samples sorted by class, then file name. The lists follow it.
    folders = sorted({folder_of[r["category_id"]] for r in records})
    index = {f: i for i, f in enumerate(folders)}
    for r in records:
        r["target"] = index[folder_of[r["category_id"]]]
    records.sort(key=lambda r: (r["target"], os.path.basename(r["image"])))
    _write_lists(out_dir, "train", records, len(folders))
    name_of = {folder_of[c]: cats[c] for c in cats}
    summary = {"classes": [name_of[f] for f in folders], "class_folders": folders, "min_size": min_size, "context": context,
               "crops": len(records), "per_class": dict(Counter(r["class"] for r in records)),
               "skipped": dict(skips.counts), "skipped_examples": skips.examples}
    write_json_atomic(os.path.join(out_dir, "summary.json"), summary, indent=1)
    logger.info(f"MSCOCO Boxes: {len(records)} crops, skipped {dict(skips.counts)}")
    return summary
