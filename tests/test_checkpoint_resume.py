"""Preemption through the real launcher: a SIGKILL of the process group while VISSL writes a
checkpoint, then the same command again (what a cluster's requeue does). Two phases of one
iteration each, a checkpoint per phase: save 1 is model_phase0.torch, save 2 the final one.
The kill is injected from the test side (tests/fault_injection/sitecustomize.py)."""
import os
import subprocess
import sys

import pytest
import torch

from vissl_ext_testing import REPO, fault_injection_env

pytestmark = pytest.mark.slow

FINAL = "model_final_checkpoint_phase1.torch"


def launch(video_frames_dir, tmp_path, kill_at_save=None):
    """The launcher in its own session (the SIGKILL goes to its process group, not pytest's);
    ``kill_at_save``: tests/fault_injection/ kills it halfway through that checkpoint write."""
    env = fault_injection_env(sigkill_at_save=kill_at_save)
    cmd = [sys.executable, os.path.join(REPO, "tools", "run_distributed_engines.py"),
           "config=pretrain/tiny/frame_temporal_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{video_frames_dir}/manifest.json]",
           "config.DATA.TRAIN.DATA_LIMIT=4", "config.OPTIMIZER.num_epochs=2", f"config.CHECKPOINT.DIR={tmp_path}/ck"]
    p = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True, text=True, timeout=900, env=env,
                       start_new_session=True)
    return p.returncode, p.stdout + p.stderr


def final_loads(ck_dir):
    ck = torch.load(ck_dir / FINAL, map_location="cpu", weights_only=True)
    trunk = ck["classy_state_dict"]["base_model"]["model"]["trunk"]
    assert "_feature_blocks.layer3.0.conv1.weight" in trunk
    return ck


def test_killed_while_saving_the_final_checkpoint_then_corrupt_files_on_disk(video_frames_dir, tmp_path):
    ck = tmp_path / "ck"
    rc, out = launch(video_frames_dir, tmp_path, kill_at_save=2)
    assert rc == -9, out[-3000:]
    names = os.listdir(ck)
    assert "model_phase0.torch" in names and FINAL not in names
    assert any(n.startswith(f".{FINAL}.") and n.endswith(".tmp") for n in names)  # killed mid-write

    # requeued: the partial write is removed, training resumes from phase 0 and finishes
    rc, out = launch(video_frames_dir, tmp_path)
    assert rc == 0, out[-3000:]
    assert "Training already succeeded" not in out
    assert "removed 1 partial checkpoint writes" in out and f"Resume from file: {ck}/model_phase0.torch" in out
    assert final_loads(ck)["iteration"] == 2  # phase 0 from the checkpoint + phase 1: no phase trained twice
    assert not [n for n in os.listdir(ck) if n.endswith(".tmp")]

    # a truncated final and a zero-byte intermediate: both named, moved aside, training starts fresh
    data = (ck / FINAL).read_bytes()
    (ck / FINAL).write_bytes(data[: len(data) // 3])
    open(ck / "model_phase0.torch", "wb").close()
    rc, out = launch(video_frames_dir, tmp_path)
    assert rc == 0, out[-3000:]
    assert "Training already succeeded" not in out
    assert f"{ck}/{FINAL} is corrupt" in out and f"{ck}/model_phase0.torch is corrupt (empty file" in out
    assert "no valid checkpoint" in out
    assert (ck / f"{FINAL}.corrupt").is_file() and (ck / "model_phase0.torch.corrupt").is_file()
    assert final_loads(ck)["iteration"] == 2

    # and now, with a final checkpoint that loads, the rerun is a no-op
    rc, out = launch(video_frames_dir, tmp_path)
    assert rc == 0 and "Training already succeeded" in out, out[-3000:]


def test_killed_while_saving_the_first_checkpoint_starts_over(video_frames_dir, tmp_path):
    ck = tmp_path / "ck"
    rc, out = launch(video_frames_dir, tmp_path, kill_at_save=1)
    assert rc == -9, out[-3000:]
    assert [n for n in os.listdir(ck) if "model_" in n] == [n for n in os.listdir(ck) if n.endswith(".tmp")] != []
    rc, out = launch(video_frames_dir, tmp_path)
    assert rc == 0, out[-3000:]
    assert "Resume from file" not in out
    final_loads(ck)
    assert os.path.isfile(ck / "model_phase0.torch")
