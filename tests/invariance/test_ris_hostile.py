"""Hostile inputs to RIS scoring against the plain loop (tests/invariance/ris_loop.py), on every
route: exact selection (N <= sample), the sampled bracket with tiny chunks (band, fallback, long
trajectories split into pieces), and torch on CPU. Guards order_stats.py / segments.py: the
per-trajectory count dtypes (uint8 / uint16 / uint32), float16 and integer features, ties."""
import importlib.util
import os

import numpy as np
import pytest

from vissl_ext.invariance.ris import compute_ris

_spec = importlib.util.spec_from_file_location("ris_loop", os.path.join(os.path.dirname(__file__), "ris_loop.py"))
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
ris_loop = _mod.ris_loop

ROUTES = {"exact": {}, "bracket": {"sample_rows": 64, "chunk_bytes": 4096}, "torch": {"device": "cpu"}}


def _same_as_loop(x, traj, classes=None, topk=(1, 3)):
    want, _ = ris_loop(x, traj, classes, topk=topk)
    for name, kw in ROUTES.items():
        got = compute_ris(x, traj, classes, topk=topk, **kw).scores
        assert got == want, (name, got, want)  # bit for bit


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int8, np.int64, np.uint8, bool])
def test_feature_dtypes(dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((500, 8)) * 3
    x = (x > 0.5) if dtype is bool else np.maximum(x, -1).astype(dtype)
    _same_as_loop(x, rng.integers(0, 50, 500))


@pytest.mark.parametrize("fill", ["constant_column", "all_zero", "signed_zeros"])
def test_ties_everywhere(fill):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((400, 6)).astype(np.float32)
    if fill == "constant_column":
        x[:, 2] = 1.5
    elif fill == "all_zero":
        x[:] = 0
    else:
        x = np.where(x > 0, np.float32(0.0), np.float32(-0.0))
    _same_as_loop(x, rng.integers(0, 40, 400))


@pytest.mark.parametrize("length", [255, 256, 65536])  # per-trajectory counts: uint8, uint16, uint32
def test_long_trajectories(length):
    rng = np.random.default_rng(3)
    traj = np.repeat(np.arange(4), length)
    rng.shuffle(traj)  # rows of a trajectory scattered: the plan gathers them
    x = np.maximum(rng.standard_normal((len(traj), 3)), 0).astype(np.float32)
    _same_as_loop(x, traj, traj % 2, topk=(1, 2))


def test_tiny_trajectories_and_n_below_the_sample():
    x = np.random.default_rng(4).standard_normal((9, 5)).astype(np.float32)
    traj, cls = [0, 1, 1, 2, 2, 2, 3, 3, 3], [0, 1, 1, 0, 0, 0, 1, 1, 1]  # lengths 1 and 2 are skipped
    _same_as_loop(x, traj, cls)
