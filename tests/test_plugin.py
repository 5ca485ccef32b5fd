"""Registration with VISSL, config resolution (ours and the host's), the hook generator, and how
another project extends our registries."""
import importlib
import os
import subprocess
import sys

import pytest

import vissl_ext
from vissl_ext_testing import REPO, compose
from vissl_ext.config import ConfigError, register_config_validator
from vissl_ext import registry
from vissl_ext.registry import hook_generator, register_data_source, register_hook_factory, register_transform


def test_components_are_registered():
    from classy_vision.dataset.transforms import TRANSFORM_REGISTRY
    from vissl.data import DATA_SOURCES_WITH_SUBSET_SUPPORT, DATASET_SOURCE_MAP
    from vissl.data.dataset_catalog import VisslDatasetCatalog
    from vissl.data.ssl_transforms.ssl_transforms_wrapper import DEFAULT_TRANSFORM_TYPES

    for name in ("video_frames", "video_frame_pairs"):
        assert name in DATASET_SOURCE_MAP and name in DATA_SOURCES_WITH_SUBSET_SUPPORT
    assert "VideoFramesToViews" in TRANSFORM_REGISTRY
    assert "VideoFramesToViews" in DEFAULT_TRANSFORM_TYPES["TRANSFORMS_WITH_COPIES"]
    assert VisslDatasetCatalog.has_data("vissl_ext_demo_videos")


def test_registration_is_idempotent():
    # in a fresh interpreter: reloading gives modules new classes, which would leak into the
    # other tests of this session (isinstance checks against the old classes)
    code = ("import importlib, vissl_ext\n"
            "from vissl.data import DATASET_SOURCE_MAP\n"
            "from vissl.data.ssl_transforms.ssl_transforms_wrapper import DEFAULT_TRANSFORM_TYPES\n"
            "before = dict(DATASET_SOURCE_MAP)\n"
            "vissl_ext.register_all()\n"
            "for mod in vissl_ext._COMPONENT_MODULES:\n"
            "    importlib.reload(importlib.import_module(mod))  # what a re-import in a worker does\n"
            "assert set(DATASET_SOURCE_MAP) == set(before)\n"
            "assert DEFAULT_TRANSFORM_TYPES['TRANSFORMS_WITH_COPIES'].count('VideoFramesToViews') == 1\n"
            "print('ok')\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr[-3000:]


@pytest.mark.parametrize("decorator, name", [
    (registry.register_data_source, "video_frames"), (registry.register_collator, "region_moco_collator"),
    (registry.register_transform, "ImageOnly"), (registry.register_model_trunk, "resnet_regions"),
    (registry.register_model_head, "dense_region_head"), (registry.register_loss, "temporal_contrastive_loss"),
    (registry.register_hook_factory, "temporal_contrastive")])
def test_a_taken_name_refuses_another_object(decorator, name):
    with pytest.raises(ValueError, match=f"'{name}' is already registered"):
        @decorator(name)
        class Other:  # noqa: F841
            pass


def test_registration_works_in_a_fresh_interpreter():
    code = ("import vissl_ext; from vissl.data import DATASET_SOURCE_MAP; "
            "assert 'video_frame_pairs' in DATASET_SOURCE_MAP; print('ok')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr


@pytest.mark.parametrize("name", ["pretrain/frame_temporal", "pretrain/moco_video_baseline", "pretrain/tiny/frame_temporal_cpu",
                                  "pretrain/tiny/moco_video_baseline_cpu"])
def test_our_configs_resolve(name):
    cfg = compose(f"config={name}")
    assert cfg.LOSS.name == "moco_loss"
    assert cfg.LOSS.moco_loss.momentum == 0.999 and cfg.LOSS.moco_loss.temperature == 0.2
    assert cfg.LOSS.moco_loss.embedding_dim == 128
    src = cfg.DATA.TRAIN.DATA_SOURCES[0]
    assert src == ("video_frames" if "baseline" in name else "video_frame_pairs")
    host = compose("config=pretrain/moco/moco_1node_resnet")
    assert cfg.MODEL.HEAD.PARAMS == host.MODEL.HEAD.PARAMS  # MoCo v2 head: 2048-2048-128 MLP


def test_tiny_inherits_and_overrides():
    full, tiny = compose("config=pretrain/frame_temporal"), compose("config=pretrain/tiny/frame_temporal_cpu")
    assert full.DATA.TRAIN.BATCHSIZE_PER_REPLICA == 32 and tiny.DATA.TRAIN.BATCHSIZE_PER_REPLICA == 4
    assert tiny.MACHINE.DEVICE == "cpu" and tiny.LOSS.moco_loss.momentum == full.LOSS.moco_loss.momentum


@pytest.mark.parametrize("name", ["pretrain/moco/moco_1node_resnet",
                                  "benchmark/linear_image_classification/imagenet1k/eval_resnet_8gpu_transfer_in1k_linear",
                                  "benchmark/linear_image_classification/voc07/eval_resnet_8gpu_transfer_voc07_svm"])
def test_host_configs_still_resolve(name):
    cfg = compose(f"config={name}")
    assert cfg.MODEL.TRUNK.NAME == "resnet"


def test_configs_resolve_from_any_directory(tmp_path):
    # runs the installed package (the editable install of /work/main), as a user's script would:
    # the launcher's import of compose_config exists in the installed copy and in this tree alike
    code = ("from vissl_ext.engines.launcher import compose_config; "
            "a, c = compose_config(['config=pretrain/frame_temporal']); print(c.DATA.TRAIN.DATA_SOURCES[0])")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == "video_frame_pairs"


def test_launcher_reports_config_errors_before_starting(tmp_path):
    p = subprocess.run([sys.executable, os.path.join(REPO, "tools", "run_distributed_engines.py"),
                        "config=pretrain/tiny/frame_temporal_cpu", "config.DATA.TRAIN.VIDEO.PAIR_GAP=0"],
                       capture_output=True, text=True, cwd=str(tmp_path))
    assert p.returncode == 2
    assert "config.DATA.TRAIN.VIDEO.PAIR_GAP must be an integer >= 1" in p.stderr


def test_hook_generator_extends_vissl_default():
    from classy_vision.hooks import ClassyHook
    from vissl.hooks import default_hook_generator

    from vissl_ext.hooks.progress_hook import ConsoleProgressHook

    cfg = compose("config=pretrain/tiny/frame_temporal_cpu")
    default = [type(h) for h in default_hook_generator(cfg)]

    class MarkerHook(ClassyHook):
        on_start = on_phase_start = on_forward = on_loss_and_meter = on_backward = on_update = ClassyHook._noop
        on_step = on_phase_end = on_end = ClassyHook._noop

    @register_hook_factory("test_marker")
    def marker_hooks(cfg):
        return [MarkerHook()]

    try:
        ours = [type(h) for h in hook_generator(cfg)]
    finally:
        from vissl_ext import registry

        registry._HOOK_FACTORIES.pop("test_marker")
    # VISSL's defaults first, then the factories' hooks, VISSL's loss NaN check last (so that
    # temporal_contrastive_loss's own check names the term first)
    from vissl.hooks import CheckNanLossHook

    kept = [h for h in default if h is not CheckNanLossHook]
    assert ours[: len(kept)] == kept and ours[-2:] == [MarkerHook, CheckNanLossHook]
    assert ConsoleProgressHook in ours[len(kept):]  # vissl_ext's own factory (quiet console)


PLUGIN = '''
"""Another project's plugin: its own data source, transform and config check, registered with
vissl_ext's helpers (the pattern README shows)."""
import numpy as np
from PIL import Image
from classy_vision.dataset.transforms.classy_transform import ClassyTransform
from vissl_ext.config import ConfigError, register_config_validator
from vissl_ext.registry import register_data_source, register_transform

@register_data_source("other_project_solid_colours", with_subset=True)
class SolidColours:
    def __init__(self, cfg, data_source, path, split, dataset_name):
        self.n = 12
    def __len__(self):
        return self.n
    def num_samples(self):
        return self.n
    def __getitem__(self, idx):
        return Image.fromarray(np.full((32, 32, 3), idx * 20, np.uint8)), True

@register_transform("OtherProjectInvert")
class Invert(ClassyTransform):
    def __call__(self, img):
        return Image.fromarray(255 - np.asarray(img))
    @classmethod
    def from_config(cls, config):
        return cls()

@register_config_validator
def no_huge_batches(config):
    if config.DATA.TRAIN.BATCHSIZE_PER_REPLICA > 4096:
        raise ConfigError("other project: batch too large")
'''


def test_another_project_registers_its_own_components(tmp_path, monkeypatch):
    from vissl.data import build_dataset
    from vissl_ext import config as cfgmod

    (tmp_path / "other_plugin.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.import_module("other_plugin")
    try:
        cfg = compose("config=pretrain/moco_video_baseline", "config.DATA.TRAIN.DATA_SOURCES=[other_project_solid_colours]",
                      "config.DATA.TRAIN.DATA_PATHS=[unused]", "config.DATA.TRAIN.DATASET_NAMES=[vissl_ext_demo_videos]",
                      "config.DATA.TRAIN.TRANSFORMS=[{name: OtherProjectInvert}, {name: ToTensor}]")
        ds = build_dataset(cfg, "TRAIN")
        s = ds[3]
        assert float(s["data"][0].max()) == pytest.approx((255 - 60) / 255)
        with pytest.raises(ConfigError, match="other project"):
            compose("config=pretrain/moco_video_baseline", "config.DATA.TRAIN.BATCHSIZE_PER_REPLICA=10000")
    finally:
        cfgmod._VALIDATORS[:] = [v for v in cfgmod._VALIDATORS if v.__module__ != "other_plugin"]
