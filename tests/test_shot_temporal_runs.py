"""pretrain/shot_temporal end to end: the joined real clips extracted with shot detection, VISSL's
launcher on 2 gloo processes, frame and shot queues identical on both ranks."""
import importlib.util
import json
import math
import os

import pytest
import torch

from vissl_ext_testing import run_engine

pytestmark = pytest.mark.slow

_spec = importlib.util.spec_from_file_location(
    "region_runs", os.path.join(os.path.dirname(__file__), "test_region_tracker_runs.py"))
_runs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_runs)


def test_two_processes_train_frame_and_shot_terms(shot_temporal_two_processes):
    tmp_path, rc, out, _ = shot_temporal_two_processes  # the monitor's test shares this run
    assert rc == 0, out[-3000:]
    assert "world_size: 2, rank: 1" in out
    assert "4 of 99 pairs straddle a cut and are dropped" in out
    with open(tmp_path / "ck" / "stdout.json") as f:
        losses = [json.loads(line)["loss"] for line in f if line.strip()]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    # 2 iterations x 2 ranks x 4 keys, gathered: the shot keys reached their own queue
    assert int(r0["queue_ptr"]) == 16 and int(r0["shot_queue_ptr"]) == 16
    for k in ("queue", "shot_queue", "shot_queue_ptr"):
        assert torch.equal(r0[k], r1[k]), k
    assert not torch.equal(r0["queue"][:, :16], r0["shot_queue"][:, :16])
    ck = torch.load(tmp_path / "ck" / "model_final_checkpoint_phase0.torch", map_location="cpu", weights_only=True)
    assert "shot_queue" in ck["classy_state_dict"]["loss"]


SHOT_KEY_CHECK_PLUGIN = '''
"""Test plugin: after the temporal_contrastive hook, re-encode the batch's views with the
momentum encoder and record which view the loss's shot keys came from."""
import json
import os
import torch
from classy_vision.hooks import ClassyHook
from vissl_ext.registry import register_hook_factory

class CheckShotKeys(ClassyHook):
    on_start = on_phase_start = on_loss_and_meter = on_backward = on_update = ClassyHook._noop
    on_step = on_phase_end = on_end = ClassyHook._noop
    @torch.no_grad()
    def on_forward(self, task):
        s, loss = task.last_batch.sample, task.loss
        enc = lambda im: torch.nn.functional.normalize(loss.moco_encoder(im)[0], dim=1)
        shot_view, frame_view = enc(s["shot_data_momentum"][0]), enc(s["data_momentum"][0])
        rec = {"iteration": task.iteration, "shot_view": torch.allclose(loss.shot_key, shot_view, atol=1e-5),
               "frame_view": torch.allclose(loss.shot_key, frame_view, atol=1e-5),
               "key_is_frame_view": torch.allclose(loss.key, frame_view, atol=1e-5)}
        with open(os.path.join(os.environ["DUMP_DIR"], "shot_keys.jsonl"), "a") as f:
            f.write(json.dumps(rec) + "\\n")

@register_hook_factory("test_check_shot_keys")
def check(cfg):
    return [CheckShotKeys()]
'''


def test_shot_keys_are_the_momentum_encoding_of_the_other_shot_view(joined_frames, tmp_path):
    """One process (no batch shuffle, so encoding a batch again gives the same keys): the loss's
    shot keys are the momentum encoder's output on shot_data_momentum, not on the frame key view."""
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "shot_key_plugin.py").write_text(SHOT_KEY_CHECK_PLUGIN)
    env = {"VISSL_EXT_PLUGINS": "shot_key_plugin", "DUMP_DIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "plug"), os.environ.get("PYTHONPATH", "")])}
    rc, out = run_engine(["config=pretrain/tiny/shot_temporal_cpu",
                          f"config.DATA.TRAIN.DATA_PATHS=[{joined_frames}/manifest.json]",
                          f"config.CHECKPOINT.DIR={tmp_path}/ck"], cwd=tmp_path, env=env)
    assert rc == 0, out[-3000:]
    with open(tmp_path / "shot_keys.jsonl") as f:
        recs = [json.loads(line) for line in f]
    assert len(recs) == 2
    assert all(r["shot_view"] and not r["frame_view"] and r["key_is_frame_view"] for r in recs), recs


@pytest.mark.skipif(not torch.cuda.is_available(), reason="VISSL runs mixed precision on CUDA only")
def test_mixed_precision_trains_on_a_gpu(joined_frames, tmp_path):
    rc, out = run_engine(["config=pretrain/tiny/shot_temporal_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{joined_frames}/manifest.json]",
                          f"config.CHECKPOINT.DIR={tmp_path}/ck", *_runs.GPU_AMP], cwd=tmp_path,
                         env={"VISSL_EXT_VERBOSE": "1"})
    assert rc == 0, out[-3000:]
    assert "Setting AMP: AmpType.PYTORCH" in out
    with open(tmp_path / "ck" / "stdout.json") as f:
        losses = [json.loads(line)["loss"] for line in f if line.strip()]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
