"""AUGMENT_BACKEND=device hook on the batches of every pretraining collator: every uint8 view key
is augmented (pretrain/shot_temporal's shot keys too), an unknown one is refused by name."""
import pytest
import torch

from vissl_ext.data.transforms import fast_augment as fa
from vissl_ext.data.collators.region_collator import shot_moco_collator
from vissl_ext.hooks.device_augment_hook import DeviceAugmentHook, DeviceAugmentIterator

SPEC = {"brightness": [0.6, 1.4], "contrast": [0.6, 1.4], "saturation": [0.6, 1.4], "hue": [-0.1, 0.1],
        "jitter_p": 0.8, "gray_p": 0.2, "blur_p": 0.5, "sigma": [0.1, 2.0], "flip_p": 0.5,
        "mean": list(fa.IMAGENET_MEAN), "std": list(fa.IMAGENET_STD)}


def _views(n=4, size=32):
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(n))


def _iterate(batch):
    class Task:
        train = True
        device = torch.device("cpu")
        data_iterator = iter([batch])

    task = Task()
    DeviceAugmentHook(SPEC).on_phase_start(task)
    assert isinstance(task.data_iterator, DeviceAugmentIterator)
    return next(task.data_iterator)


def test_shot_keys_are_augmented_too():
    """pretrain/shot_temporal with AUGMENT_BACKEND=device: the shot keys reached the momentum
    encoder as uint8 ('expected scalar type Byte but found Float' in the first step)."""
    samples = [{"data": [v[0] for v in (_views(1), _views(2), _views(3))], "label": [0], "data_valid": [1],
                "data_idx": [i]} for i in range(4)]
    b = _iterate(shot_moco_collator(samples))  # the keys the real collator gives
    for key in ("data", "data_momentum", "shot_data_momentum"):
        v = b[key][0]
        assert v.dtype == torch.float32 and v.shape == (4, 3, 32, 32) and v.min() < -0.5, key  # normalised


def test_unknown_uint8_view_key_is_named():
    with pytest.raises(TypeError, match=r"batch keys \['extra_views'\] hold uint8 views"):
        _iterate({"data": [_views()], "data_momentum": [_views()], "extra_views": [_views()]})
