"""The batched kornia path (AUGMENT_BACKEND=device) against the per-sample CPU path, the hook that
wires it into VISSL's loop, and the AUGMENT_BACKEND config switch."""
import numpy as np
import pytest
import torch
from classy_vision.dataset.transforms import build_transform

from vissl_ext.config import ConfigError
from vissl_ext.data.transforms import fast_augment as fa
from vissl_ext.data.transforms.augment_backend import apply_augment_backend, rewrite_transforms
from vissl_ext.data.transforms.device_augment import DeviceMocoV2Aug, build_device_augment
from vissl_ext.hooks.device_augment_hook import DeviceAugmentHook, DeviceAugmentIterator, device_augment_hooks
from vissl_ext_testing import compose, device_view_params, real_frames


@pytest.fixture(scope="module")
def batch():
    frames = real_frames(n_per_video=3) * 2  # 18 views: each frame twice, with two draws
    return frames, torch.stack([torch.from_numpy(np.array(f)).permute(2, 0, 1) for f in frames])


def test_batched_device_path_equals_per_sample_cpu_path(batch):
    frames, views = batch
    torch.manual_seed(0)
    aug = DeviceMocoV2Aug(fa.MocoV2Distribution(gray_p=0.4, blur_p=0.7))
    out = aug(views)
    assert out.dtype == torch.float32 and out.shape == views.shape
    params = device_view_params(aug)
    assert len({p.order for p in params if p.jitter}) > 1  # one order per sample, not per batch
    assert any(p.gray for p in params) and any(p.sigma > 0 for p in params) and any(p.flip for p in params)
    std = torch.tensor(fa.IMAGENET_STD).view(3, 1, 1)
    for i, (x, p) in enumerate(zip(frames, params)):
        ref = fa.augment_view(x, p, fa.IMAGENET_MEAN, fa.IMAGENET_STD)
        d = ((out[i] - ref).abs() * std * 255).numpy()  # grey levels
        assert d.max() <= 2.0 and d.mean() < 1.0, (i, p, d.max(), d.mean())
    # and the parameters matter: another draw gives other views
    assert (aug(views) - out).abs().mean() > 0.05


def test_uint8_input_is_required(batch):
    _, views = batch
    with pytest.raises(TypeError, match="ToUint8Tensor"):
        DeviceMocoV2Aug()(views.float())


def test_hook_augments_both_views_on_the_device(batch):
    _, views = batch
    spec = {"brightness": [0.6, 1.4], "contrast": [0.6, 1.4], "saturation": [0.6, 1.4], "hue": [-0.1, 0.1],
            "jitter_p": 0.8, "gray_p": 0.2, "blur_p": 0.5, "sigma": [0.1, 2.0], "flip_p": 0.5,
            "mean": list(fa.IMAGENET_MEAN), "std": list(fa.IMAGENET_STD)}
    assert build_device_augment(spec).dist == fa.MocoV2Distribution()

    class Task:
        train = True
        device = torch.device("cpu")
        data_iterator = iter([{"data": [views], "data_momentum": [views.clone()], "label": [torch.zeros(len(views))]}])

    task = Task()
    hook = DeviceAugmentHook(spec)
    hook.on_phase_start(task)
    assert isinstance(task.data_iterator, DeviceAugmentIterator)
    b = next(task.data_iterator)
    q, k = b["data"][0], b["data_momentum"][0]
    assert q.dtype == k.dtype == torch.float32 and q.shape == views.shape
    assert (q - k).abs().mean() > 0.05  # same pixels, independent parameters per view
    with pytest.raises(StopIteration):
        next(task.data_iterator)
    task.train = False  # test phases are left alone
    task.data_iterator = iter([])
    hook.on_phase_start(task)
    assert not isinstance(task.data_iterator, DeviceAugmentIterator)


# --------------------------------------------------------------------------------------------
# the AUGMENT_BACKEND switch
# --------------------------------------------------------------------------------------------
def names(ts):
    return [t["name"] for t in ts]


def test_host_is_the_default_and_leaves_the_list_alone():
    cfg = compose("config=pretrain/frame_temporal")
    assert cfg.DATA.TRAIN.AUGMENT_BACKEND == "host"
    assert "ImgPilColorDistortion" in names(cfg.DATA.TRAIN.TRANSFORMS)
    assert device_augment_hooks(cfg) == []


def test_fast_backend_swaps_the_tail_for_one_fast_transform():
    cfg = compose("config=pretrain/frame_temporal", "config.DATA.TRAIN.AUGMENT_BACKEND=fast")
    ts = cfg.DATA.TRAIN.TRANSFORMS
    assert names(ts) == ["VideoFramesToViews", "FastRandomResizedCrop", "FastMocoV2Aug"]
    t = build_transform(dict(ts[-1]))
    assert t.dist == fa.MocoV2Distribution() and tuple(t.mean) == fa.IMAGENET_MEAN and tuple(t.std) == fa.IMAGENET_STD
    assert cfg.DATA.TRAIN.VIDEO["FRAME_ARRAYS"] is True  # every transform takes arrays: OpenCV decode
    host_flip_first = compose("config=pretrain/frame_temporal", "config.DATA.TRAIN.AUGMENT_BACKEND=fast",
                              "config.DATA.TRAIN.TRANSFORMS.1.name=RandomHorizontalFlip")  # a PIL-only transform
    assert not host_flip_first.DATA.TRAIN.VIDEO.get("FRAME_ARRAYS", False)
    # idempotent: composing the rewritten config again changes nothing
    before = [dict(x) for x in ts]
    apply_augment_backend(cfg)
    assert [dict(x) for x in cfg.DATA.TRAIN.TRANSFORMS] == before


def test_device_backend_leaves_decode_and_crop_to_the_workers():
    cfg = compose("config=pretrain/moco_video_baseline", "config.DATA.TRAIN.AUGMENT_BACKEND=device")
    assert names(cfg.DATA.TRAIN.TRANSFORMS) == ["ImgReplicatePil", "FastRandomResizedCrop", "ToUint8Tensor"]
    aug = build_device_augment(cfg.DATA.TRAIN.DEVICE_AUGMENT)
    assert aug.dist == fa.MocoV2Distribution()  # flip included: it moved to the device
    assert [type(h).__name__ for h in device_augment_hooks(cfg)] == ["DeviceAugmentHook"]


def test_device_backend_for_region_pairs_keeps_the_box_flip_on_the_cpu():
    cfg = compose("config=pretrain/region_tracker", "config.DATA.TRAIN.AUGMENT_BACKEND=device")
    ts = cfg.DATA.TRAIN.TRANSFORMS
    assert names(ts) == ["RegionPairToViews", "BoxRandomResizedCrop", "BoxRandomHorizontalFlip", "ImageOnly"]
    assert names(ts[-1]["transforms"]) == ["ToUint8Tensor"]
    assert cfg.DATA.TRAIN.DEVICE_AUGMENT["flip_p"] == 0.0
    assert cfg.DATA.TRAIN.VIDEO["FRAME_ARRAYS"] is True  # the box transforms take arrays too
    fast = compose("config=pretrain/region_tracker", "config.DATA.TRAIN.AUGMENT_BACKEND=fast")
    inner = fast.DATA.TRAIN.TRANSFORMS[-1]["transforms"]
    assert names(inner) == ["FastMocoV2Aug"] and inner[0]["flip_p"] == 0.0
    build_transform(dict(fast.DATA.TRAIN.TRANSFORMS[-1]))  # ImageOnly accepts it


def test_switch_refuses_what_it_cannot_translate():
    with pytest.raises(ConfigError, match="AUGMENT_BACKEND must be one of"):
        compose("config=pretrain/frame_temporal", "config.DATA.TRAIN.AUGMENT_BACKEND=gpu")
    base = [{"name": "RandomResizedCrop", "size": 224}, {"name": "ImgPilColorDistortion", "strength": 0.5},
            {"name": "ToTensor"}, {"name": "Normalize", "mean": [0.5] * 3, "std": [0.2] * 3}]
    new, spec = rewrite_transforms(base, "fast", "T")
    assert names(new) == ["FastRandomResizedCrop", "FastMocoV2Aug"] and spec["blur"] is None and spec["flip_p"] == 0
    with pytest.raises(ConfigError, match="ImgPilRandomSolarize"):
        rewrite_transforms(base + [{"name": "ImgPilRandomSolarize"}], "fast", "T")
    with pytest.raises(ConfigError, match="need ToTensor"):
        rewrite_transforms(base[:2], "device", "T")
    with pytest.raises(ConfigError, match="needs the MoCo v2 augmentation"):
        rewrite_transforms(base[:1] + base[2:], "device", "T")


def test_sources_deliver_what_each_backend_promises(tmp_path, video_frames_dir):
    from vissl.data import build_dataset

    shapes = {}
    for backend in ("host", "fast", "device"):
        cfg = compose("config=pretrain/tiny/frame_temporal_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{video_frames_dir}/manifest.json]",
                      f"config.DATA.TRAIN.AUGMENT_BACKEND={backend}")
        s = build_dataset(cfg, "TRAIN")[0]
        shapes[backend] = [(v.dtype, tuple(v.shape)) for v in s["data"]]
    assert shapes["host"] == shapes["fast"] == [(torch.float32, (3, 64, 64))] * 2
    assert shapes["device"] == [(torch.uint8, (3, 64, 64))] * 2


@pytest.mark.parametrize("backend,dtype", [("fast", torch.float32), ("device", torch.uint8)])
def test_region_pair_list_runs_on_arrays(batch, backend, dtype):
    from vissl_ext.data.transforms.box_transforms import RegionPair

    def boxes_inside(b, w, h, eps=1e-3):
        return len(b) == 0 or (b[:, :2].min() >= -eps and b[:, 2].max() <= w + eps and b[:, 3].max() <= h + eps)

    frames, _ = batch
    cfg = compose("config=pretrain/region_tracker", f"config.DATA.TRAIN.AUGMENT_BACKEND={backend}")
    first, *rest = [build_transform(dict(t)) for t in cfg.DATA.TRAIN.TRANSFORMS]
    boxes = np.asarray([[10, 20, 120, 150], [60, 40, 200, 210]], np.float32)
    torch.manual_seed(0)
    for _ in range(3):
        views = first(RegionPair([frames[0], frames[1]], [boxes, boxes + 4], np.asarray([3, 7])))
        for t in rest:
            views = [t(v) for v in views]
        for v in views:
            assert v.img.dtype == dtype and tuple(v.img.shape) == (3, 224, 224)
            assert boxes_inside(v.boxes, 224, 224) and set(v.ids.tolist()) <= {3, 7}
