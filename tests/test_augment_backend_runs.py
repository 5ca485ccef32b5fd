"""Training runs through tools/run_distributed_engines.py with AUGMENT_BACKEND fast and device
(tiny CPU configs, 2 iterations). With device, the workers hand uint8 views over: a run only
gets through the trunk's first convolution if the hook augmented and normalised them."""
import json
import math
import os

import pytest

from vissl_ext_testing import run_engine

pytestmark = pytest.mark.slow


def losses(ckpt_dir):
    with open(os.path.join(ckpt_dir, "stdout.json")) as f:
        return [json.loads(line)["loss"] for line in f if line.strip()]


def test_device_backend_two_spawned_gloo_processes(video_frames_dir, tmp_path):
    rc, out = run_engine(["config=pretrain/tiny/frame_temporal_cpu",
                          f"config.DATA.TRAIN.DATA_PATHS=[{video_frames_dir}/manifest.json]",
                          f"config.CHECKPOINT.DIR={tmp_path}/ck", "config.DATA.TRAIN.AUGMENT_BACKEND=device",
                          "config.DISTRIBUTED.NUM_PROC_PER_NODE=2", "config.MULTI_PROCESSING_METHOD=spawn",
                          "config.DATA.TRAIN.DATA_LIMIT=16"], cwd=tmp_path,
                         env={"VISSL_EXT_VERBOSE": "1"})  # VISSL's full console: the asserts read its lines
    assert rc == 0, out[-3000:]
    assert "world_size: 2, rank: 1" in out
    assert "'ToUint8Tensor'" in out and out.count("adds ['DeviceAugmentHook']") == 2  # both ranks
    ls = losses(tmp_path / "ck")
    assert len(ls) == 2 and all(math.isfinite(x) for x in ls)


def test_fast_backend_trains_the_baseline(video_frames_dir, tmp_path):
    rc, out = run_engine(["config=pretrain/tiny/moco_video_baseline_cpu",
                          f"config.DATA.TRAIN.DATA_PATHS=[{video_frames_dir}/manifest.json]",
                          f"config.CHECKPOINT.DIR={tmp_path}/ck", "config.DATA.TRAIN.AUGMENT_BACKEND=fast",
                          "config.DATA.TRAIN.VIDEO.FRAMES_PER_VIDEO=4"], cwd=tmp_path,  # 2 videos x 4 = DATA_LIMIT
                         env={"VISSL_EXT_VERBOSE": "1"})
    assert rc == 0, out[-3000:]
    assert "FastMocoV2Aug" in out and "ImgPilColorDistortion" not in out.split("AUGMENT_BACKEND=fast")[-1]
    ls = losses(tmp_path / "ck")
    assert len(ls) == 2 and all(math.isfinite(x) for x in ls)


def test_unknown_backend_is_a_config_error(tmp_path):
    rc, out = run_engine(["config=pretrain/tiny/frame_temporal_cpu", "config.DATA.TRAIN.AUGMENT_BACKEND=gpu"], cwd=tmp_path)
    assert rc == 2 and "AUGMENT_BACKEND must be one of" in out


def test_device_backend_trains_shot_temporal(joined_frames, tmp_path):
    """The shot keys (shot_data_momentum) go through the device augmentation too: they reached
    the momentum encoder as uint8 ('expected scalar type Byte but found Float') before."""
    rc, out = run_engine(["config=pretrain/tiny/shot_temporal_cpu",
                          f"config.DATA.TRAIN.DATA_PATHS=[{joined_frames}/manifest.json]",
                          f"config.CHECKPOINT.DIR={tmp_path}/ck", "config.DATA.TRAIN.AUGMENT_BACKEND=device"],
                         cwd=tmp_path, env={"VISSL_EXT_VERBOSE": "1"})
    assert rc == 0, out[-3000:]
    assert "'ToUint8Tensor'" in out and "adds ['DeviceAugmentHook']" in out
    ls = losses(tmp_path / "ck")
    assert len(ls) == 2 and all(math.isfinite(x) for x in ls)
