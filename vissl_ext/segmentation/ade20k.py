"""ADE20K (ADEChallengeData2016 layout) for detectron2: label preparation and dataset registration.

Layout read: ``<root>/images/{training,validation}/*.jpg`` and
``<root>/annotations/{training,validation}/*.png`` (8-bit label maps, 0 = "other objects",
1..150 = rows of objectInfo150.txt). Preparation maps labels the way detectron2's
``datasets/prepare_ade20k_sem_seg.py`` does (0 -> 255 = ignore, k -> k - 1) into
``<out>/annotations_detectron2/<split>/`` because SemSegEvaluator reads ground truth from those
files as they are. It also writes ``<out>/<split>.json`` (the dataset dicts), is resumable
(existing outputs, written atomically, are kept) and checks every pair: a missing label PNG, a
label whose size differs from its image, a label that is not single-channel or holds values
outside 0..150 is skipped, counted and logged with its file name (``strict=True``: an error).
"""
import glob
import json
import logging
import os
from collections import Counter
from typing import Dict, List, Optional, Tuple

import numpy as np
from PIL import Image

from vissl_ext.utils.atomic_io import atomic_open, write_json_atomic

logger = logging.getLogger(__name__)

SPLITS = {"train": "training", "val": "validation"}
NUM_CLASSES = 150
IGNORE_LABEL = 255
MANIFEST_VERSION = 1


class ADE20KDataError(ValueError):
    """A file of the ADE20K layout is missing or malformed (message names it)."""


def find_root(path: str) -> str:
    """``path`` itself or its ``ADEChallengeData2016`` child, whichever has ``images/``."""
    for cand in (path, os.path.join(path, "ADEChallengeData2016")):
        if os.path.isdir(os.path.join(cand, "images")):
            return cand
    raise ADE20KDataError(
        f"{path}: no images/ folder here or in {path}/ADEChallengeData2016 (expected the ADEChallengeData2016 "
        "layout: images/{training,validation}/*.jpg and annotations/{training,validation}/*.png)")


def map_labels(label: np.ndarray) -> np.ndarray:
    """ADE20K label map (0 = other, 1..150) -> detectron2 training ids (255 = ignore, 0..149)."""
    out = label.astype(np.int64) - 1
    out[label == 0] = IGNORE_LABEL
    return out.astype(np.uint8)


def _check_pair(image_path: str, label_path: str) -> Tuple[Optional[Tuple[str, str]], Optional[np.ndarray], Tuple[int, int]]:
    """((kind, message) or None, raw label array, (height, width) of the image)."""
    try:
        with Image.open(image_path) as im:
            width, height = im.size
    except Exception as e:  # noqa: BLE001 (any decoder failure is the file's fault)
        return ("unreadable_image", f"unreadable image ({e})"), None, (0, 0)
    if not os.path.isfile(label_path):
        return ("missing_label", "missing label PNG"), None, (height, width)
    try:
        with Image.open(label_path) as lab:
            mode = lab.mode
            label = np.asarray(lab)
    except Exception as e:  # noqa: BLE001
        return ("unreadable_label", f"unreadable label PNG ({e})"), None, (height, width)
    if label.ndim != 2 or mode not in ("L", "P", "I", "I;16"):
        return ("not_single_channel", f"label PNG is not a single-channel label map (mode {mode}, shape {label.shape})"), None, (height, width)
    if label.shape != (height, width):
        return ("size_mismatch", f"label size {label.shape[1]}x{label.shape[0]} differs from image size {width}x{height}"), None, (height, width)
    bad = np.unique(label[(label < 0) | (label > NUM_CLASSES)])
    if bad.size:
        return ("out_of_range", f"label values outside 0..{NUM_CLASSES}: {bad[:10].tolist()}"), None, (height, width)
    return None, label, (height, width)


def prepare_split(root: str, split: str, out_dir: str, strict: bool = False, overwrite: bool = False,
                  progress: bool = True) -> Dict:
    """Check and convert one split (``training`` / ``validation``); returns its manifest dict."""
    from tqdm import tqdm

    root = find_root(root)
    image_dir = os.path.join(root, "images", split)
    label_dir = os.path.join(root, "annotations", split)
    if not os.path.isdir(image_dir):
        raise ADE20KDataError(f"{image_dir}: no such folder (split {split!r})")
    images = sorted(glob.glob(os.path.join(image_dir, "*.jpg")))
    if not images:
        raise ADE20KDataError(f"{image_dir}: no .jpg images")
    gt_dir = os.path.join(out_dir, "annotations_detectron2", split)
    os.makedirs(gt_dir, exist_ok=True)
    stems = {os.path.splitext(os.path.basename(p))[0] for p in images}
    orphans = sorted(p for p in glob.glob(os.path.join(label_dir, "*.png"))
                     if os.path.splitext(os.path.basename(p))[0] not in stems)
    for p in orphans:
        logger.warning(f"{p}: label PNG without an image in {image_dir}: ignored")
    records: List[Dict] = []
    skipped: Counter = Counter()
    skipped_files: List[Dict] = []
    for image_path in tqdm(images, desc=f"ADE20K {split}", disable=not progress, unit="img"):
        stem = os.path.splitext(os.path.basename(image_path))[0]
        label_path = os.path.join(label_dir, stem + ".png")
        out_path = os.path.join(gt_dir, stem + ".png")
        problem, label, (height, width) = _check_pair(image_path, label_path)
        if problem:
            kind, message = problem
            bad_file = image_path if kind == "unreadable_image" else label_path
            if strict:
                raise ADE20KDataError(f"{bad_file}: {message}. Fix or remove the pair, or run without --strict "
                                      "to skip it.")
            skipped[kind] += 1
            skipped_files.append({"file": bad_file, "problem": message})
            logger.warning(f"{bad_file}: {message}: skipped")
            continue
        if overwrite or not os.path.isfile(out_path):
            with atomic_open(out_path, "wb") as f:
                Image.fromarray(map_labels(label)).save(f, format="PNG")
        records.append({"file_name": os.path.abspath(image_path), "sem_seg_file_name": os.path.abspath(out_path),
                        "height": height, "width": width, "image_id": stem})
    manifest = {"version": MANIFEST_VERSION, "root": os.path.abspath(root), "split": split,
                "num_images": len(images), "records": records, "skipped": dict(skipped),
                "skipped_files": skipped_files, "orphan_labels": len(orphans)}
    write_json_atomic(os.path.join(out_dir, f"{split}.json"), manifest)
    logger.info(f"ADE20K {split}: {len(records)} images ready, {sum(skipped.values())} skipped {dict(skipped)}")
    return manifest


def prepare(root: str, out_dir: str, splits=("training", "validation"), **kw) -> Dict[str, Dict]:
    """Prepare every split of ``splits`` that exists under ``root``."""
    root = find_root(root)
    present = [s for s in splits if os.path.isdir(os.path.join(root, "images", s))]
    if not present:
        raise ADE20KDataError(f"{root}/images: none of the splits {list(splits)} is present")
    return {s: prepare_split(root, s, out_dir, **kw) for s in present}


def load_records(manifest_path: str) -> List[Dict]:
    with open(manifest_path) as f:
        manifest = json.load(f)
    if manifest.get("version") != MANIFEST_VERSION:
        raise ADE20KDataError(f"{manifest_path}: written by another version; prepare the dataset again")
    return manifest["records"]


def register(out_dir: str, prefix: str = "ade20k_vissl") -> List[str]:
    """Register ``{prefix}_train`` / ``{prefix}_val`` for the prepared splits in ``out_dir``."""
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.datasets.builtin_meta import ADE20K_SEM_SEG_CATEGORIES

    names = []
    for short, split in SPLITS.items():
        manifest = os.path.join(out_dir, f"{split}.json")
        if not os.path.isfile(manifest):
            continue
        name = f"{prefix}_{short}"
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        DatasetCatalog.register(name, lambda m=manifest: load_records(m))
        MetadataCatalog.get(name).set(
            stuff_classes=ADE20K_SEM_SEG_CATEGORIES[:], ignore_label=IGNORE_LABEL, evaluator_type="sem_seg",
            sem_seg_root=os.path.join(out_dir, "annotations_detectron2", split))
        names.append(name)
    if not names:
        raise ADE20KDataError(f"{out_dir}: no prepared split (training.json / validation.json); run the preparation")
    return names
