"""Dataset names in VISSL's dataset catalog.

VISSL looks a dataset name up in its catalog for label files even when DATA_PATHS is given, so
every DATASET_NAMES entry of our configs must be registered. ``vissl_ext_demo_videos`` points at
the manifest the demo writes (``$VISSL_EXT_DEMO_DIR``, default ``~/.cache/vissl_ext/demo``), so
``config=pretrain/frame_temporal`` runs after ``python tools/demo.py`` with no data path given.
"""
import os

from vissl.data.dataset_catalog import VisslDatasetCatalog

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
# Ground Truth Tracks: tools/build_gt_tracks.py writes <out>/index.json; give it as DATA_PATHS
register_dataset("vissl_ext_gt_tracks", os.path.join(demo_dir(), "gt_tracks", "index.json"))
