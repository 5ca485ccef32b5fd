"""VISSL data source over a RIS manifest: the image of each entry, cropped to its box. The
config's TRANSFORMS resize it (128 px GOT-10k/ALOI, 224 px PASCAL3D+, as the public code).

    DATA.TEST.DATA_SOURCES: [ris_manifest]   DATA.TEST.DATA_PATHS: [/data/ris/aloi_viewpoint.json]
    DATA.TEST.DATASET_NAMES: [vissl_ext_ris]

An unreadable image or a box outside its image stops the run with an error naming the file
(a feature computed from a placeholder would give a silently wrong score); the builders'
verification skips such entries up front.
"""
import os

from vissl_ext.data.catalog import register_dataset
from vissl_ext.invariance.images import load_ris_image
from vissl_ext.invariance.manifest import RISManifestError, load_ris_manifest
from vissl_ext.registry import DataSource, register_data_source

DATASET_NAME = "vissl_ext_ris"
# DATA_PATHS always names the manifest; the catalog entry only satisfies VISSL's label lookup
register_dataset(DATASET_NAME, "<give DATA.TEST.DATA_PATHS=[manifest.json]>")


@register_data_source("ris_manifest", with_subset=True)
class RISManifestSource(DataSource):
    def __init__(self, cfg, data_source, path, split, dataset_name):
        super().__init__(cfg, data_source, path, split, dataset_name)
        self.manifest = load_ris_manifest(path)
        self.entries = self.manifest.entries

    @classmethod
    def check_data_path(cls, cfg, path: str, split: str):
        """Before any worker starts: the manifest reads and its images are there."""
        m = load_ris_manifest(path)
        missing = [e.image for e in m.entries if not os.path.isfile(e.image)]
        if missing:
            raise RISManifestError(f"RIS manifest {m.path} lists {len(missing)} missing images, e.g. {missing[:3]}: "
                                f"the data moved; rebuild it with tools/build_ris_trajectories.py or fix the paths")

    def __getitem__(self, idx: int):
        e = self.entries[idx]
        return load_ris_image(e.image, e.box), True

    def __len__(self):
        return len(self.entries)

    def get_image_paths(self):
        return [e.image for e in self.entries]
