"""The launcher's checks of a SLURM submission (config.SLURM.USE_SLURM=true): one ``error:`` line,
exit code 2, before anything is submitted (vissl_ext/engines/preflight.py check_slurm); after a
submission, one line with the job id, the log folder and the command to watch it.

This machine has no SLURM: where a check reads the cluster, ``sinfo`` and ``sbatch`` are small
scripts on PATH standing in for a cluster's (a partition list as sinfo prints it; sbatch's answer).
"""
import os
import sys

import pytest

from vissl_ext_testing import frame_folder, one_error_line, write_video_manifest

GPU = "config=pretrain/frame_temporal"  # MACHINE.DEVICE=gpu, 8 processes per node
SINFO = "learnfair* 16 gpu:8(S:0-1)\ndevlab 2 gpu:volta:2\ncpu 10 (null)\n"


@pytest.fixture
def run(tmp_path, monkeypatch):
    """The launcher's argv for a SLURM job of ``GPU`` on real (tiny) data; the log folder is tmp/slurm."""
    monkeypatch.chdir(tmp_path)
    manifest = write_video_manifest(tmp_path / "manifest.json", [frame_folder(tmp_path, n=4)])

    def argv(*extra):
        return [GPU, f"config.DATA.TRAIN.DATA_PATHS=[{manifest}]", "config.SLURM.USE_SLURM=true",
                f"config.SLURM.LOG_FOLDER={tmp_path}/slurm", f"config.CHECKPOINT.DIR={tmp_path}/ck", *extra]

    return argv


@pytest.fixture
def cluster(tmp_path, monkeypatch):
    """sinfo, sbatch and srun on PATH (stand-ins: see the module docstring); returns the bin folder."""
    b = tmp_path / "bin"
    b.mkdir()
    (b / "sinfo").write_text(f"#!/bin/sh\nprintf '{SINFO}'\n")
    (b / "sbatch").write_text("#!/bin/sh\necho 'Submitted batch job 4242'\n")
    (b / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit looks for it; the job never runs here
    for f in b.iterdir():
        f.chmod(0o755)
    monkeypatch.setenv("PATH", f"{b}{os.pathsep}{os.environ['PATH']}")
    return b


def submitted_nothing(tmp_path):
    return not (tmp_path / "slurm").exists() or not os.listdir(tmp_path / "slurm")


def test_submitit_missing(capsys, run, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    line = one_error_line(capsys, run("config.SLURM.PARTITION=learnfair"))
    assert "config.SLURM.USE_SLURM=true needs submitit" in line and "pip install submitit==" in line


@pytest.mark.parametrize("extra,says", [
    (["config.SLURM.PARTITION=learnfair", "+config.SLURM.ADDITIONAL_PARAMETERS.gres=gpu:4"],
     "config.SLURM.ADDITIONAL_PARAMETERS.gres=gpu:4 requests 4 GPUs per node, but config.DISTRIBUTED.NUM_NODES=1 x "
     "NUM_PROC_PER_NODE=8 asks 8 GPUs per node"),
    (["config.SLURM.PARTITION=learnfair", "config.DISTRIBUTED.NUM_NODES=2", "+config.SLURM.ADDITIONAL_PARAMETERS.gpus=8",
      "+config.SLURM.CHECKPOINT_DIR_IS_SHARED=true"], "gpus=8 requests 8 GPUs, but config.DISTRIBUTED.NUM_NODES=2 x "
     "NUM_PROC_PER_NODE=8 asks 16 GPUs in all"),
    (["config.SLURM.PARTITION="], "config.SLURM.PARTITION is empty"),
    # 10 000 iterations of 8 x 2 views of 32 images need at least 2.7 min at 4000 images/s per GPU
    (["config.SLURM.PARTITION=learnfair", "config.SLURM.TIME_HOURS=0", "config.SLURM.TIME_MINUTES=3",
      "config.CHECKPOINT.CHECKPOINT_ITER_FREQUENCY=10000"],
     "config.SLURM.TIME_HOURS=0 TIME_MINUTES=3 is shorter than one checkpoint period: CHECKPOINT_ITER_FREQUENCY=10000 "
     "take at least 3 min"),
    # epochs (frame_temporal: every 5): 4 000 000 samples / (32 x 16 processes) = 7813 iterations
    (["config.SLURM.PARTITION=learnfair", "config.SLURM.TIME_HOURS=0", "config.SLURM.TIME_MINUTES=3",
      "config.DATA.TRAIN.DATA_LIMIT=4000000", "config.DISTRIBUTED.NUM_NODES=2", "+config.SLURM.CHECKPOINT_DIR_IS_SHARED=true"],
     "CHECKPOINT_FREQUENCY=5 epochs of 7813 iterations (4000000 samples / batch 32 x 16 processes) take at least 10 min"),
    (["config.SLURM.PARTITION=learnfair", "config.DISTRIBUTED.NUM_NODES=2"],
     "/ck is under /tmp, local to each node, but NUM_NODES=2"),
    (["config.SLURM.PARTITION=learnfair"], "this machine has no sbatch and no srun on its PATH"),
])
def test_refused_before_submitting(capsys, run, tmp_path, extra, says):
    line = one_error_line(capsys, run(*extra))
    assert says in line, line
    if "/tmp" in says:
        assert "+config.SLURM.CHECKPOINT_DIR_IS_SHARED=true" in line
    assert submitted_nothing(tmp_path)


@pytest.mark.parametrize("extra,says", [
    (["config.SLURM.PARTITION=learnfare"], "config.SLURM.PARTITION=learnfare is not a partition of this cluster (did "
                                           "you mean `learnfair`?); sinfo lists ['cpu', 'devlab', 'learnfair']"),
    (["config.SLURM.PARTITION=devlab"], "NUM_PROC_PER_NODE=8 GPUs per node requested, but the nodes of partition devlab "
                                        "have at most 2 (sinfo): set NUM_PROC_PER_NODE=2"),
    (["config.SLURM.PARTITION=devlab", "config.DISTRIBUTED.NUM_PROC_PER_NODE=2", "config.DISTRIBUTED.NUM_NODES=4",
      "+config.SLURM.CHECKPOINT_DIR_IS_SHARED=true"], "NUM_NODES=4 but partition devlab has 2 nodes"),
])
def test_refused_by_what_sinfo_says(capsys, run, cluster, tmp_path, extra, says):
    assert says in one_error_line(capsys, run(*extra))
    assert submitted_nothing(tmp_path)


def test_submitted_job_is_one_line(capsys, run, cluster, tmp_path):
    from vissl_ext.engines.launcher import main

    assert main(run("config.SLURM.PARTITION=learnfair", "config.DISTRIBUTED.NUM_NODES=4",
                    f"config.CHECKPOINT.DIR={tmp_path}/shared_ck", "+config.SLURM.CHECKPOINT_DIR_IS_SHARED=true")) == 0
    out = capsys.readouterr().out.splitlines()
    slurm = tmp_path / "slurm"
    assert out[-1] == (f"submitted: job 4242 (4 nodes x 8 processes), logs in {slurm}; "
                       f"watch: squeue -j 4242; tail -f {slurm}/4242_0_log.out")
    # what was submitted: VISSL's executor parameters, our job class
    script = (slurm / "4242_submission.sh").read_text()
    for option in ("--nodes=4", "--gpus-per-node=8", "--ntasks-per-node=1", "--partition=learnfair", "--cpus-per-task=64"):
        assert option in script, script
    # without sinfo: the partition is not checked, and a warning says so
    (cluster / "sinfo").unlink()
    assert main(run("config.SLURM.PARTITION=anything")) == 0
    err = capsys.readouterr().err
    assert "warning: sinfo not found: config.SLURM.PARTITION=anything, its nodes and GPUs are not checked" in err


def test_device_train_check_refuses_without_cuda(tmp_path):
    """scripts/device_train_check.py (the GPU figures of issue 23) says in one line that it needs CUDA."""
    import subprocess

    import torch

    from vissl_ext_testing import REPO

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the check would run")
    p = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "device_train_check.py"), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and p.stdout == "" and not (tmp_path / "o").exists()
    assert p.stderr.startswith("error: no CUDA device") and p.stderr.count("\n") == 1
