"""AUGMENT_BACKEND=device hook on the batches of every pretraining collator: every uint8 view key
is augmented (pretrain/shot_temporal's shot keys too), each view with its own draw, and an
unknown key is refused by name."""
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


def _iterate(batch, spec=SPEC):
    class Task:
        train = True
        device = torch.device("cpu")
        data_iterator = iter([batch])

    task = Task()
    DeviceAugmentHook(spec).on_phase_start(task)
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


def test_views_are_augmented_each_with_its_own_draw():
    """Eight samples whose query, key and shot key are one and the same image: after the hook the
    views differ from the image merely normalised (augmented), from each other within a sample
    and across samples (independent draws per view), and the image comes back when every
    probability is 0 (so the differences are the augmentation's)."""
    img = _views(1, 32)[0]
    n = 8
    batch = lambda: {key: [img.expand(n, 3, 32, 32).clone()] for key in ("data", "data_momentum", "shot_data_momentum")}
    plain = (img.float() / 255 - torch.tensor(fa.IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(fa.IMAGENET_STD).view(3, 1, 1)
    torch.manual_seed(0)
    out = _iterate(batch())
    views = torch.stack([out[key][0] for key in ("data", "data_momentum", "shot_data_momentum")])  # [3, n, ...]
    changed = (views - plain).abs().flatten(2).amax(2) > 1e-3
    assert changed.float().mean() >= 0.75, changed  # P(no op fires) = 0.2 * 0.8 * 0.5 * 0.5 = 4%
    flat = views.flatten(0, 1).flatten(1)
    same = (torch.cdist(flat, flat) < 1e-3).sum() - len(flat)
    assert same <= 4, f"{int(same) // 2} pairs of the {len(flat)} views are identical: draws are shared"
    off = dict(SPEC, jitter_p=0.0, gray_p=0.0, blur_p=0.0, flip_p=0.0)
    out = _iterate(batch(), off)
    for key in ("data", "data_momentum", "shot_data_momentum"):
        assert torch.allclose(out[key][0], plain.expand(n, 3, 32, 32), atol=1e-5), key
