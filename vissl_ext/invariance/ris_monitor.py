"""Monitor metric RIS: Top-K Representation Invariance Score (vissl_ext.invariance.ris.compute_ris)
of the current trunk's features on a RIS manifest from tools/build_ris_trajectories.py, each
image cropped to its box and resized to the manifest's image_size (config.MONITOR.IMAGE_SIZE
overrides it), as the offline `ris` engine does.

    config.MONITOR.RIS.MANIFEST=/data/ris/aloi_viewpoint.json config.MONITOR.RIS.TOPK=[10,25]
"""
import os
from collections import Counter

from vissl_ext.config import ConfigError
from vissl_ext.hooks.monitor_hook import ImageSet, MonitorMetric, square_resize_transform
from vissl_ext.invariance.images import load_ris_image
from vissl_ext.invariance.manifest import RISManifestError, load_ris_manifest
from vissl_ext.invariance.ris import DEFAULT_TOPK, MIN_TRAJECTORY_LENGTH, compute_ris
from vissl_ext.registry import register_monitor_metric


def _load_entry(item):
    path, box = item
    return load_ris_image(path, box)


@register_monitor_metric("RIS")
class RISMonitor(MonitorMetric):
    defaults = {"MANIFEST": "", "TOPK": list(DEFAULT_TOPK)}
    hint = "config.MONITOR.RIS.MANIFEST (a manifest from tools/build_ris_trajectories.py)"

    def enabled(self, s) -> bool:
        return bool(s["MANIFEST"])

    def validate(self, s, where):
        if not isinstance(s["MANIFEST"], str):
            raise ConfigError(f"{where}.MANIFEST must be the path of a RIS manifest, got {s['MANIFEST']!r}")
        ks = s["TOPK"]
        if not (isinstance(ks, (list, tuple)) and ks and all(isinstance(k, int) and not isinstance(k, bool) and k >= 1
                                                              for k in ks)):
            raise ConfigError(f"{where}.TOPK must be a list of integers >= 1, got {ks!r}")

    def check_paths(self, s, where):
        """The manifest reads, its images exist, and it can be scored (2+ classes, a trajectory of
        3+ images): a monitor that could only fail is refused before training starts."""
        try:
            m = load_ris_manifest(s["MANIFEST"])
        except RISManifestError as e:
            raise ConfigError(f"{where}.MANIFEST: {e}") from None
        gone = [e.image for e in m.entries if not os.path.isfile(e.image)]
        if gone:
            raise ConfigError(f"{where}.MANIFEST: {m.path} lists {len(gone)} missing images, e.g. {gone[:3]}; rebuild "
                              f"it with tools/build_ris_trajectories.py")
        if len(set(m.classes)) < 2:
            raise ConfigError(f"{where}.MANIFEST: {m.path} has {len(set(m.classes))} class; RIS needs 2 or more")
        if max(Counter(m.trajectories).values()) < MIN_TRAJECTORY_LENGTH:
            raise ConfigError(f"{where}.MANIFEST: {m.path} has no trajectory of {MIN_TRAJECTORY_LENGTH}+ images")

    def image_sets(self, s, image_size):
        m = load_ris_manifest(s["MANIFEST"])
        return {"ris": ImageSet([(e.image, e.box) for e in m.entries], _load_entry,
                                square_resize_transform(image_size or m.image_size),
                                trajectories=m.trajectories, classes=m.classes)}

    def score(self, s, feats, sets):
        info = sets["ris"].info
        r = compute_ris(feats["ris"], info["trajectories"], info["classes"], topk=s["TOPK"])
        return {f"ris_top{k}": v for k, v in r.scores.items()}
