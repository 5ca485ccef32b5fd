"""Atomic checkpoint writes and validated resume (vissl_ext.utils.checkpoints, patched into VISSL by
vissl_ext.utils.compat). Real training runs killed mid-save: tests/test_checkpoint_resume.py."""
import logging
import os
import subprocess
import sys

import pytest
import torch

from vissl_ext_testing import REPO, fault_injection_env
from vissl_ext.utils import checkpoints as C


def cfg(**ck):
    base = dict(AUTO_RESUME=True, OVERWRITE_EXISTING=False, CHECKPOINT_ITER_FREQUENCY=-1,
                LATEST_CHECKPOINT_RESUME_FILE_NUM=1, USE_SYMLINK_CHECKPOINT_FOR_RESUME=False)
    base.update(ck)
    return {"CHECKPOINT": base}


def content(phase):
    # the layout VISSL's LogLossMetricsCheckpointHook writes
    return {"phase_idx": phase, "iteration": 2 * phase, "loss": {}, "iteration_num": 2 * phase,
            "train_phase_idx": phase, "type": "consolidated",
            "classy_state_dict": {"base_model": {"model": {"trunk": {"w": torch.full((64, 64), float(phase))}}}}}


def truncate(path, frac=0.5):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: int(len(data) * frac)])


def zero(path):
    open(path, "wb").close()


@pytest.fixture
def folder(tmp_path):
    for p in (0, 1):
        C.save_checkpoint(str(tmp_path), content(p), f"model_phase{p}.torch")
    C.save_checkpoint(str(tmp_path), content(2), "model_final_checkpoint_phase2.torch")
    return tmp_path


def test_vissl_uses_the_atomic_writer_and_validated_resume():
    import classy_vision.generic.util as cu
    import vissl.utils.checkpoint as vc
    import vissl.utils.distributed_launcher as dl

    assert vc.save_checkpoint is C.save_checkpoint and cu.save_checkpoint is C.save_checkpoint
    assert dl.is_training_finished is C.is_training_finished
    assert dl.get_resume_checkpoint is C.get_resume_checkpoint


def test_written_checkpoints_load_weights_only_and_leave_no_temp_file(folder):
    assert sorted(os.listdir(folder)) == ["model_final_checkpoint_phase2.torch", "model_phase0.torch", "model_phase1.torch"]
    ck = torch.load(folder / "model_phase1.torch", weights_only=True)
    assert torch.equal(ck["classy_state_dict"]["base_model"]["model"]["trunk"]["w"], torch.ones(64, 64))
    assert C.is_training_finished(cfg(), str(folder))
    assert C.get_resume_checkpoint(cfg(), str(folder)) == str(folder / "model_final_checkpoint_phase2.torch")


@pytest.mark.parametrize("damage", [truncate, zero])
def test_corrupt_final_is_moved_aside_and_resume_takes_newest_valid(folder, damage, caplog):
    final = folder / "model_final_checkpoint_phase2.torch"
    damage(final)
    with caplog.at_level(logging.WARNING):
        assert not C.is_training_finished(cfg(), str(folder))
    assert "model_final_checkpoint_phase2.torch" in caplog.text and "corrupt" in caplog.text
    assert not final.exists() and (folder / "model_final_checkpoint_phase2.torch.corrupt").exists()
    assert C.get_resume_checkpoint(cfg(), str(folder)) == str(folder / "model_phase1.torch")


@pytest.mark.parametrize("damage", [truncate, zero])
def test_corrupt_newest_intermediate_falls_back_to_the_one_before(folder, damage, caplog):
    os.remove(folder / "model_final_checkpoint_phase2.torch")
    damage(folder / "model_phase1.torch")
    assert not C.is_training_finished(cfg(), str(folder))
    with caplog.at_level(logging.WARNING):
        assert C.get_resume_checkpoint(cfg(), str(folder)) == str(folder / "model_phase0.torch")
    assert "model_phase1.torch" in caplog.text
    assert sorted(os.listdir(folder)) == ["model_phase0.torch", "model_phase1.torch.corrupt"]


def test_nothing_valid_starts_fresh_and_a_second_corruption_gets_its_own_name(folder, caplog):
    for name in os.listdir(folder):
        zero(folder / name)
    (folder / "model_phase1.torch.corrupt").write_bytes(b"older")
    with caplog.at_level(logging.WARNING):
        assert C.get_resume_checkpoint(cfg(), str(folder)) is None
    assert "starts from scratch" in caplog.text
    assert (folder / "model_phase1.torch.corrupt").read_bytes() == b"older"
    assert sorted(os.listdir(folder)) == ["model_final_checkpoint_phase2.torch.corrupt", "model_phase0.torch.corrupt",
                                          "model_phase1.torch.corrupt", "model_phase1.torch.corrupt.1"]


def test_a_file_that_loads_but_is_not_a_training_checkpoint_is_refused(folder):
    torch.save({"model": {"w": torch.zeros(2)}}, folder / "model_final_checkpoint_phase2.torch")
    assert "lacks keys" in C.checkpoint_problem(str(folder / "model_final_checkpoint_phase2.torch"))
    assert not C.is_training_finished(cfg(), str(folder))


def test_resume_honours_vissl_options(folder):
    assert C.get_resume_checkpoint(cfg(OVERWRITE_EXISTING=True), str(folder)) == str(folder / "model_phase1.torch")
    assert not C.is_training_finished(cfg(OVERWRITE_EXISTING=True), str(folder))
    os.remove(folder / "model_final_checkpoint_phase2.torch")
    assert C.get_resume_checkpoint(cfg(LATEST_CHECKPOINT_RESUME_FILE_NUM=2), str(folder)) == str(folder / "model_phase0.torch")
    assert C.get_resume_checkpoint(cfg(AUTO_RESUME=False), str(folder)) is None


def test_dangling_or_corrupt_symlink_target_is_not_used(folder):
    link = folder / "checkpoint.torch"
    os.symlink(folder / "model_phase1.torch", link)
    os.remove(folder / "model_final_checkpoint_phase2.torch")
    truncate(folder / "model_phase1.torch")
    assert not C.is_training_finished(cfg(USE_SYMLINK_CHECKPOINT_FOR_RESUME=True), str(folder))
    assert not os.path.lexists(link)  # VISSL's launcher then asks get_resume_checkpoint
    assert C.get_resume_checkpoint(cfg(), str(folder)) == str(folder / "model_phase0.torch")


_KILLED_SAVE = """
import os, sys, torch
sys.path.insert(0, {repo!r})
from vissl_ext.utils import checkpoints as C
C.save_checkpoint(sys.argv[1], {{"phase_idx": 0, "iteration": 0, "classy_state_dict": {{"w": torch.zeros(1 << 20)}}}}, "model_final_checkpoint_phase0.torch")
C.save_checkpoint(sys.argv[1], {{"phase_idx": 9, "iteration": 9, "classy_state_dict": {{"w": torch.ones(1 << 20)}}}}, "model_final_checkpoint_phase0.torch")
print("not killed")
"""


def test_sigkill_while_overwriting_keeps_the_previous_file(tmp_path):
    """A real SIGKILL of the process group halfway through a write (injected from the test side,
    tests/fault_injection/): the old checkpoint stays whole, the partial write is a temp file
    that the next resume removes."""
    p = subprocess.run([sys.executable, "-c", _KILLED_SAVE.format(repo=REPO), str(tmp_path)], capture_output=True,
                       text=True, timeout=300, start_new_session=True, env=fault_injection_env(sigkill_at_save=2))
    assert p.returncode == -9, p.stdout + p.stderr
    names = sorted(os.listdir(tmp_path))
    assert names[0].startswith(".model_final_checkpoint_phase0.torch.") and names[0].endswith(".tmp")
    assert names[1] == "model_final_checkpoint_phase0.torch"
    ck = torch.load(tmp_path / names[1], weights_only=True)
    assert ck["phase_idx"] == 0 and ck["classy_state_dict"]["w"].sum() == 0
    assert C.is_training_finished(cfg(), str(tmp_path))
    assert os.listdir(tmp_path) == ["model_final_checkpoint_phase0.torch"]


def test_fvcore_checkpointer_writes_atomically(tmp_path):
    """detectron2's DetectionCheckpointer (ADE20K trainer) saves through fvcore's Checkpointer."""
    from fvcore.common.checkpoint import Checkpointer

    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ck = Checkpointer(model, save_dir=str(tmp_path), optimizer=opt)
    assert getattr(Checkpointer.save, "_vissl_ext", False)
    ck.save("model_0000009", iteration=9)
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000009.pth"]
    assert ck.get_checkpoint_file() == str(tmp_path / "model_0000009.pth")
    data = torch.load(tmp_path / "model_0000009.pth", weights_only=True)
    assert data["iteration"] == 9 and torch.equal(data["model"]["weight"], model.weight.detach())
    assert "optimizer" in data
