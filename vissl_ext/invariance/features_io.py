"""Reading features for RIS: a .npy/.npz matrix in manifest order, a folder written by VISSL's
extract engine (rank*_chunk*_<split>_<layer>_features.npy + inds), or the public code's
``alldata.pth`` ({'feat', 'instance', 'classes'})."""
import os
import re
import zipfile
from typing import Optional, Tuple

import numpy as np


class FeatureFileError(ValueError):
    pass


def vissl_layers(folder: str, split: str = "test"):
    pat = re.compile(rf"rank\d+_chunk\d+_{split}_(.+)_features\.npy$")
    return sorted({m.group(1) for f in os.listdir(folder) for m in [pat.match(f)] if m})


def load_vissl_features(folder: str, layer: Optional[str] = None, split: str = "test") -> Tuple[np.ndarray, np.ndarray]:
    """(features [N, D] flattened, dataset indices [N] sorted) merged over ranks and chunks with
    VISSL's own ExtractedFeaturesLoader."""
    from vissl.utils.extract_features_utils import ExtractedFeaturesLoader

    layers = vissl_layers(folder, split)
    if not layers:
        raise FeatureFileError(f"{folder}: no VISSL features (rank*_chunk*_{split}_<layer>_features.npy); "
                               "run the extract engine first")
    if layer is None:
        if len(layers) > 1:
            raise FeatureFileError(f"{folder}: features of several layers {layers}; choose one (--layer)")
        layer = layers[0]
    elif layer not in layers:
        raise FeatureFileError(f"{folder}: no features of layer {layer!r}; found {layers}")
    out = ExtractedFeaturesLoader.load_features(folder, split=split, layer=layer, flatten_features=True)
    return out["features"], out["inds"]


def load_features(path: str, num_images: Optional[int] = None, layer: Optional[str] = None,
                  mmap: bool = True) -> np.ndarray:
    """Features [N, D] in manifest order. ``num_images``: the manifest's length, checked."""
    if os.path.isdir(path):
        feats, inds = load_vissl_features(path, layer)
        if num_images is not None and (len(inds) != num_images or not np.array_equal(inds, np.arange(num_images))):
            raise FeatureFileError(f"{path}: features for {len(inds)} images (indices {inds[:3]}...), "
                                   f"the manifest lists {num_images}; extracted from another manifest?")
    elif path.endswith((".npy", ".npz")):
        try:  # allow_pickle=False: an object array (pickled Python objects) is refused
            if path.endswith(".npy"):
                feats = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
            else:
                with np.load(path, allow_pickle=False) as z:
                    if "features" not in z:
                        raise FeatureFileError(f"{path}: an .npz needs an array named 'features'; has {list(z.keys())}")
                    feats = z["features"]
        except (ValueError, EOFError, zipfile.BadZipFile) as e:  # empty, truncated or not an array file
            if isinstance(e, FeatureFileError):
                raise
            raise FeatureFileError(f"{path}: refused to load: {' '.join(str(e).split()) or type(e).__name__} "
                                   "(features must be a numeric array)") from None
    else:
        raise FeatureFileError(f"{path}: unknown feature file; give .npy/.npz [N, D] in manifest order, or a "
                               "folder written by VISSL's extract engine")
    if feats.ndim == 0:
        raise FeatureFileError(f"{path}: holds a single number, not features [N images, D units]")
    if feats.ndim != 2:
        feats = feats.reshape(len(feats), -1)
    if num_images is not None and len(feats) != num_images:
        raise FeatureFileError(f"{path}: {len(feats)} feature rows, the manifest lists {num_images} images")
    return feats


def load_reference_alldata(path: str, trust_pickle: bool = False):
    """The public code's alldata.pth: (features, trajectory ids, classes or None), loaded safely
    (tensors, numpy arrays, plain containers) unless ``trust_pickle``."""
    from vissl_ext.utils.safe_load import torch_load

    data = torch_load(path, trust_pickle=trust_pickle)
    if not isinstance(data, dict) or "feat" not in data or "instance" not in data:
        raise FeatureFileError(f"{path}: expected the public code's dict with 'feat' and 'instance'")
    feats = data["feat"]
    if hasattr(feats, "is_floating_point") and feats.is_floating_point():
        feats = feats.float()  # bfloat16 has no numpy dtype; float32 holds every half value exactly
    feats = np.asarray(feats)
    return feats, np.asarray(data["instance"]), (np.asarray(data["classes"]) if "classes" in data else None)
