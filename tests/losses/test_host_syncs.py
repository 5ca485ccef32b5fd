"""Host reads of tensor values (GPU->host syncs on a GPU) in one training step of the tiny
region_tracker config, counted by patching the Tensor methods that read values: none in
vissl_ext's loss and hook in one process, one (every image's region count, for shuffle-BN) per
rank on 2 gloo processes. The probe sees the train step's own read of the loss (VISSL's)."""
import os

import pytest

from vissl_ext_ddp import host_reads_of_a_step, run_ranks
from vissl_ext_testing import REPO


def ours(result):
    return {site: n for site, n in result["syncs"].items() if site.startswith("vissl_ext/")}


def test_one_process_step_reads_nothing_in_vissl_ext():
    r = host_reads_of_a_step(0)
    assert ours(r) == {}
    # the probe works: it sees the train step's read of the loss (VISSL's, here in the benchmark's step)
    assert [n for site, n in r["syncs"].items() if "bench_comm_sync.py" in site and site.endswith(" item")] == [1]


def test_two_process_step_reads_the_region_counts_once(tmp_path):
    for r in run_ranks(host_reads_of_a_step, tmp_path):
        assert sum(ours(r).values()) == 1, r["syncs"]
        assert list(ours(r)) == [next(s for s in ours(r) if "temporal_contrastive_hook.py" in s and "tolist" in s)]
        # shuffle-BN sends boxes and pooled keys, not maps: no collective payload near a
        # [4, 128, 4, 4] fp32 map (32 KB); the images (4 x 3 x 64 x 64 fp32, 196 KB) still go
        comm = r["comm"]
        assert sum(comm.values()) - 196_608 < 16_384, comm


def test_device_check_refuses_cleanly_without_cuda():
    import subprocess
    import sys

    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: the check would run")
    p = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "device_sync_check.py")], capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 2 and p.stdout == ""
    assert p.stderr.startswith("error: no CUDA device") and p.stderr.count("\n") == 1
