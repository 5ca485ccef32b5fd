"""Monitor metric KNN: weighted kNN top-1 (vissl_ext.downstream.knn: k 20, temperature 0.07,
cosine) of the current trunk's features, a labelled training set voting for a validation set.

    config.MONITOR.KNN.TRAIN=/data/knn/train config.MONITOR.KNN.VAL=/data/knn/val

Each set: a folder of class folders, a VISSL filelist ``<split>_images.npy`` (with
``<split>_labels.npy`` beside it), or ``[images.npy, labels.npy]``."""
from vissl_ext.config import ConfigError, need_int, need_number
from vissl_ext.data.image_sets import ImageSetError, align_classes, load_labelled_images, missing_files
from vissl_ext.downstream.knn import knn_top1
from vissl_ext.hooks.monitor_hook import ImageSet, MonitorMetric, center_crop_transform, load_rgb
from vissl_ext.registry import register_monitor_metric

DEFAULT_IMAGE_SIZE = 224


def _spec(value):
    return list(value) if isinstance(value, (list, tuple)) else value


@register_monitor_metric("KNN")
class KNNMonitor(MonitorMetric):
    defaults = {"TRAIN": "", "VAL": "", "K": 20, "TEMPERATURE": 0.07}
    hint = "config.MONITOR.KNN.TRAIN and config.MONITOR.KNN.VAL (labelled image sets)"

    def enabled(self, s) -> bool:
        return bool(s["TRAIN"]) or bool(s["VAL"])

    def validate(self, s, where):
        for key in ("TRAIN", "VAL"):
            v = s[key]
            ok = isinstance(v, str) or (isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(p, str) for p in v))
            if not ok:
                raise ConfigError(f"{where}.{key} must be a folder, a <split>_images.npy or [images.npy, labels.npy], "
                                  f"got {v!r}")
        if bool(s["TRAIN"]) != bool(s["VAL"]):
            missing = "VAL" if s["TRAIN"] else "TRAIN"
            raise ConfigError(f"{where}.{missing} is empty: the kNN needs a training set and a validation set")
        need_int(s["K"], f"{where}.K", 1)
        need_number(s["TEMPERATURE"], f"{where}.TEMPERATURE", low=0, low_open=True)

    def _load(self, s, where):
        sets = {}
        for key in ("TRAIN", "VAL"):
            try:
                sets[key] = load_labelled_images(_spec(s[key]))
            except ImageSetError as e:
                raise ConfigError(f"{where}.{key}: {e}") from None
        try:
            sets["VAL"] = align_classes(sets["TRAIN"], sets["VAL"], f"{where}.VAL")
        except ImageSetError as e:
            raise ConfigError(str(e)) from None
        return sets["TRAIN"], sets["VAL"]

    def check_paths(self, s, where):
        for key, images in zip(("TRAIN", "VAL"), self._load(s, where)):
            gone = missing_files(images)
            if gone:
                raise ConfigError(f"{where}.{key}: {images.source} lists {len(gone)} missing images, e.g. {gone[:3]}")

    def image_sets(self, s, image_size):
        train, val = self._load(s, "config.MONITOR.KNN")
        tf = center_crop_transform(image_size or DEFAULT_IMAGE_SIZE)
        return {"train": ImageSet(train.paths, load_rgb, tf, labels=train.labels),
                "val": ImageSet(val.paths, load_rgb, tf, labels=val.labels)}

    def score(self, s, feats, sets):
        return {"knn_top1": knn_top1(feats["train"], sets["train"].info["labels"], feats["val"],
                                     sets["val"].info["labels"], k=s["K"], temperature=s["TEMPERATURE"])}
