"""Dataset names in VISSL's dataset catalog.

VISSL looks a dataset name up in its catalog for label files even when DATA_PATHS is given, so
every DATASET_NAMES entry of our configs must be registered. ``vissl_ext_demo_videos`` points at
the manifest the demo writes (``$VISSL_EXT_DEMO_DIR``, default ``~/.cache/vissl_ext/demo``), so
``config=pretrain/frame_temporal`` runs after ``python tools/demo.py`` with no data path given
(``vissl_ext_demo_tracks`` likewise for ``config=pretrain/region_tracker``). A run that falls
back on a catalog entry says so at config time (:func:`log_catalog_fallback`), with the key
that gives one's own data.
"""
import logging
import os

from vissl.data.dataset_catalog import VisslDatasetCatalog

from vissl_ext.config import register_config_validator

NO_LABELS = "<no labels>"


def demo_dir() -> str:
    return os.environ.get("VISSL_EXT_DEMO_DIR", os.path.join(os.path.expanduser("~"), ".cache", "vissl_ext", "demo"))


def register_dataset(name: str, train_path: str, val_path: str = None, train_labels: str = NO_LABELS,
                     val_labels: str = NO_LABELS):
    """Register (idempotently) a dataset name with VISSL's catalog."""
    if VisslDatasetCatalog.has_data(name):
        return
    VisslDatasetCatalog.register_data(
        name, {"train": [train_path, train_labels], "val": [val_path or train_path, val_labels]}
    )


register_dataset("vissl_ext_demo_videos", os.path.join(demo_dir(), "frames", "manifest.json"))
register_dataset("vissl_ext_demo_tracks", os.path.join(demo_dir(), "tracks", "index.json"))
# Ground Truth Tracks: tools/build_gt_tracks.py writes <out>/tracks/index.json; give <out>/tracks as DATA_PATHS
register_dataset("vissl_ext_gt_tracks", os.path.join(demo_dir(), "gt_tracks", "index.json"))


@register_config_validator
def log_catalog_fallback(config):
    """With DATA_PATHS empty, VISSL reads the catalog path of each DATASET_NAMES entry: name the
    data this run picked and how to give one's own, so that nobody trains on the demo unawares."""
    for split in ("TRAIN", "TEST"):
        data = config["DATA"].get(split)
        if not data or list(data.get("DATA_PATHS", []) or []):
            continue
        for name in list(data.get("DATASET_NAMES", []) or []):
            if not (str(name).startswith("vissl_ext_") and VisslDatasetCatalog.has_data(name)):
                continue
            path = VisslDatasetCatalog.get(name)["train" if split == "TRAIN" else "val"][0]
            missing = "" if os.path.exists(path) else " (missing: run `python tools/demo.py` to write it)"
            logging.getLogger("vissl_ext").warning(
                f"config.DATA.{split}.DATA_PATHS is not set: using dataset '{name}' from VISSL's catalog, "
                f"{path}{missing}. To train on your own data: config.DATA.{split}.DATA_PATHS=[<folder>]")
