"""Labelled image sets for evaluations during training (the monitor's kNN): a folder of class
folders (torchvision's ImageFolder layout) or a VISSL ``disk_filelist`` split (an ``.npy`` of
image paths and one of integer labels).

    /data/knn/train/<class>/<image>.jpg          config.MONITOR.KNN.TRAIN=/data/knn/train
    /data/knn/train_images.npy + train_labels.npy config.MONITOR.KNN.TRAIN=/data/knn/train_images.npy
    [images.npy, labels.npy]                     config.MONITOR.KNN.TRAIN=[/d/imgs.npy,/d/lbls.npy]
"""
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Union

import numpy as np

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".webp")


class ImageSetError(ValueError):
    """A labelled image set that cannot be read; the message names the path and the fix."""


@dataclass
class LabelledImages:
    paths: List[str]
    labels: np.ndarray  # int64, one per path
    classes: Optional[List[str]]  # folder layout: class names by label; filelists: None
    source: str

    def __len__(self):
        return len(self.paths)


def _folder(root: str) -> LabelledImages:
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    paths, labels = [], []
    for i, c in enumerate(classes):
        for d, _, files in sorted(os.walk(os.path.join(root, c), followlinks=True)):
            for f in sorted(files):
                if f.lower().endswith(IMAGE_EXTENSIONS):
                    paths.append(os.path.join(d, f))
                    labels.append(i)
    if not paths:
        raise ImageSetError(f"{root}: no images in class folders (expected {root}/<class>/<image>.jpg)")
    return LabelledImages(paths, np.asarray(labels, np.int64), classes, root)


def _filelist(images: str, labels: str) -> LabelledImages:
    from vissl_ext.utils.safe_load import UnsafeFileError, load_npy

    for p in (images, labels):
        if not os.path.isfile(p):
            raise ImageSetError(f"{p} does not exist")
    try:
        paths, y = load_npy(images), load_npy(labels)
    except UnsafeFileError as e:
        raise ImageSetError(str(e)) from None
    paths = [str(p) for p in np.asarray(paths).reshape(-1)]
    y = np.asarray(y).reshape(-1)
    if len(paths) != len(y) or not len(paths):
        raise ImageSetError(f"{images} lists {len(paths)} images but {labels} has {len(y)} labels: they must match "
                            f"and not be empty")
    if not np.issubdtype(y.dtype, np.integer):
        try:
            y = y.astype(np.int64)
        except (TypeError, ValueError):
            raise ImageSetError(f"{labels}: labels must be integers, got dtype {y.dtype}") from None
    return LabelledImages(paths, y.astype(np.int64), None, images)


def load_labelled_images(spec: Union[str, Sequence[str]]) -> LabelledImages:
    """The image set ``spec`` names: a folder of class folders, ``X_images.npy`` (labels in
    ``X_labels.npy`` beside it) or ``[images.npy, labels.npy]``."""
    if isinstance(spec, (list, tuple)):
        if len(spec) != 2:
            raise ImageSetError(f"a filelist split is [images.npy, labels.npy], got {list(spec)}")
        return _filelist(str(spec[0]), str(spec[1]))
    spec = str(spec)
    if os.path.isdir(spec):
        return _folder(spec)
    if spec.endswith("_images.npy"):
        return _filelist(spec, spec[: -len("_images.npy")] + "_labels.npy")
    if not os.path.exists(spec):
        raise ImageSetError(f"{spec} does not exist")
    raise ImageSetError(f"{spec}: give a folder of class folders, a VISSL filelist <split>_images.npy (with "
                        f"<split>_labels.npy beside it) or [images.npy, labels.npy]")


def align_classes(train: LabelledImages, val: LabelledImages, where: str) -> LabelledImages:
    """``val`` with the labels of ``train``'s class folders (each folder set numbers its own
    classes); a validation class missing from the training set is an error."""
    if train.classes is None or val.classes is None:
        return val
    index: Dict[str, int] = {c: i for i, c in enumerate(train.classes)}
    unknown = sorted(set(val.classes) - set(index))
    if unknown:
        raise ImageSetError(f"{where}: classes {unknown[:5]} of {val.source} have no folder in {train.source}")
    labels = np.asarray([index[val.classes[y]] for y in val.labels], np.int64)
    return LabelledImages(val.paths, labels, train.classes, val.source)


def missing_files(images: LabelledImages) -> List[str]:
    return [p for p in images.paths if not os.path.isfile(p)]
