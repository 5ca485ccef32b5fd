"""AUGMENT_BACKEND=device: the batched on-device MoCo v2 augmentation, wired into VISSL's loop.

VISSL has no hook before the forward pass, but it builds ``task.data_iterator`` before
``on_phase_start``; this hook wraps that iterator, so every batch reaches the train step with
its uint8 views (``data``: queries, ``data_momentum``: MoCo keys) already augmented and
normalised on ``task.device``, each view with its own random parameters (and the shot keys,
``shot_data_momentum``, of pretrain/shot_temporal). VISSL's GPU copy
wrapper has moved the uint8 batch to the device by then (a quarter of float32's bytes).
"""
import torch

from vissl_ext.hooks.base import EventHook
from vissl_ext.registry import register_hook_factory

VIEW_KEYS = ("data", "data_momentum", "shot_data_momentum")  # queries, keys, shot keys (pretrain/shot_temporal)


def _is_uint8_views(v) -> bool:
    return isinstance(v, torch.Tensor) and v.dtype == torch.uint8 and v.ndim == 4 and v.shape[1] == 3


class DeviceAugmentIterator:
    def __init__(self, inner, augment, device):
        self.inner, self.augment, self.device = inner, augment, device

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self.inner)
        for key in VIEW_KEYS:
            if key in batch:
                batch[key] = [self.augment(v.to(self.device, non_blocking=True)) for v in batch[key]]
        left = [k for k, v in batch.items() if isinstance(v, (list, tuple)) and any(map(_is_uint8_views, v))]
        if left:  # a collator with other view keys: uint8 pixels would reach the model
            raise TypeError(f"AUGMENT_BACKEND=device: batch keys {left} hold uint8 views the device augmentation "
                            f"does not know (it augments {list(VIEW_KEYS)})")
        return batch

    def __len__(self):
        return len(self.inner)


class DeviceAugmentHook(EventHook):

    def __init__(self, spec):
        super().__init__()
        self.spec = dict(spec)
        self.augment = None

    def on_phase_start(self, task) -> None:
        if not task.train:
            return
        device = getattr(task, "device", torch.device("cpu"))
        if self.augment is None:
            from vissl_ext.data.transforms.device_augment import build_device_augment  # kornia: only when used

            self.augment = build_device_augment(self.spec).to(device)
        task.data_iterator = DeviceAugmentIterator(task.data_iterator, self.augment, device)


@register_hook_factory("device_augment")
def device_augment_hooks(cfg):
    train = cfg["DATA"]["TRAIN"]
    if train.get("AUGMENT_BACKEND", "host") != "device":
        return []
    return [DeviceAugmentHook(train["DEVICE_AUGMENT"])]
