"""RIS core: equality with an independent plain implementation of the rules, exact order
statistics, properties with known answers, bad input."""
import importlib.util
import os

import numpy as np
import pytest

from vissl_ext.invariance.ris import RISInputError, compute_ris

_spec = importlib.util.spec_from_file_location("ris_loop", os.path.join(os.path.dirname(__file__), "ris_loop.py"))
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
ris_loop = _mod.ris_loop
_spec = importlib.util.spec_from_file_location("order_stats_probe",
                                               os.path.join(os.path.dirname(__file__), "order_stats_probe.py"))
_probe = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_probe)
column_order_stats = _probe.column_order_stats


def _close(a, b):
    assert set(a) == set(b)
    for k in a:
        assert a[k] == b[k], (k, a, b)  # bit for bit: same rules, same summation order


def _data(kind, n, d, n_traj, seed, dtype=np.float32):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    if kind == "relu":  # many exact zeros: ties at the thresholds
        x = np.maximum(x - 0.8, 0)
    elif kind == "quantized":  # few distinct values: ties everywhere
        x = np.round(x * 2) / 2
    elif kind == "sparse":  # > 95 % zeros in most units: thresholds are 0
        x = np.where(rng.random((n, d)) < 0.97, 0.0, np.abs(x))
    traj = rng.integers(0, n_traj, n)
    return x.astype(dtype), traj


@pytest.mark.parametrize("kind", ["gauss", "relu", "quantized", "sparse"])
@pytest.mark.parametrize("with_classes", [False, True])
def test_equals_plain_implementation(kind, with_classes):
    # a fixed seed per case (hash() of a str changes per process: the data would too)
    seed = 10 * ["gauss", "relu", "quantized", "sparse"].index(kind) + int(with_classes)
    x, traj = _data(kind, 1500, 40, 300, seed=seed)
    classes = (traj % 9) if with_classes else None
    got = compute_ris(x, traj, classes, topk=(1, 10, 25))
    want, want_per_class = ris_loop(x, traj, classes, topk=(1, 10, 25))
    _close(got.scores, want)
    assert set(got.per_class) == set(want_per_class)
    for c in want_per_class:
        _close(got.per_class[c], want_per_class[c])
    assert got.num_short_trajectories == sum(1 for t in set(traj.tolist()) if (traj == t).sum() < 3)


@pytest.mark.parametrize("kind", ["gauss", "relu", "sparse"])
def test_streaming_paths_equal_plain(kind, tmp_path):
    """Bracketed thresholds (sample << N), tiny chunks, a memmap and float64: same scores."""
    x, traj = _data(kind, 6000, 30, 500, seed=7, dtype=np.float64)
    want, _ = ris_loop(x, traj)
    path = tmp_path / "f.npy"
    np.save(path, x)
    mm = np.load(path, mmap_mode="r")
    for sample_rows in (64, 512):
        got = compute_ris(mm, traj, sample_rows=sample_rows, chunk_bytes=8 * 30 * 37)
        _close(got.scores, want)
    got32 = compute_ris(x.astype(np.float32), traj, sample_rows=300, chunk_bytes=5000)
    _close(got32.scores, ris_loop(x.astype(np.float32), traj)[0])


@pytest.mark.parametrize("kind", ["gauss", "relu", "quantized", "sparse"])
def test_order_statistics_exact(kind):
    x, _ = _data(kind, 5000, 25, 10, seed=3)
    x[:, 0] = 1.5  # a constant unit
    x[::2, 1] = -0.0  # negative zeros tie with zeros
    x[1::2, 1] = 0.0
    ranks = [0, 17, 2500, 4750, 4999]
    s = np.sort(x, axis=0)
    for sample_rows in (100, 1000, 10**6):
        out = column_order_stats(x, ranks, sample_rows=sample_rows, chunk_bytes=4096)
        for i, r in enumerate(ranks):
            np.testing.assert_array_equal(out["values"][i], s[r])
            np.testing.assert_array_equal(out["less"][i], (x < s[r]).sum(0))


def test_trajectory_constant_representation_scores_maximum():
    """Features constant along each trajectory (distinct across trajectories): every unit fires
    on all or none of a trajectory, L = 1 where it fires and G is exactly the firing rate, so
    the Top-K RIS is 100 %. Random features stay far below."""
    rng = np.random.default_rng(0)
    n_traj, length, d = 20, 4, 400
    values = np.stack([rng.permutation(n_traj) for _ in range(d)], axis=1).astype(np.float64)  # distinct ranks
    x = np.repeat(values, length, axis=0)
    traj = np.repeat(np.arange(n_traj), length)
    classes = traj // 2  # 10 classes: percentile 90, threshold inside the 19th trajectory's block
    res = compute_ris(x, traj, classes, topk=(10, 25))
    assert res.firing_rate_percent == pytest.approx(10.0)
    assert res.scores[10] == pytest.approx(100.0, abs=1e-9)
    assert res.scores[25] == pytest.approx(100.0, abs=1e-9)
    noise = compute_ris(rng.standard_normal(x.shape), traj, classes, topk=(10, 25))
    assert noise.scores[25] < 80


def test_permuting_units_or_images_changes_nothing():
    x, traj = _data("relu", 2000, 60, 200, seed=11)
    classes = traj % 13
    base = compute_ris(x, traj, classes)
    perm = np.random.default_rng(1).permutation(60)
    _close(compute_ris(x[:, perm], traj, classes).scores, base.scores)
    rows = np.random.default_rng(2).permutation(2000)
    _close(compute_ris(x[rows], traj[rows], classes[rows]).scores, base.scores)


def test_string_labels_and_tensor_input():
    import torch

    x, traj = _data("gauss", 400, 30, 40, seed=5)
    names = np.array([f"video_{t:03d}" for t in traj], dtype=object)
    a = compute_ris(torch.from_numpy(x), names)
    b = compute_ris(x, traj)
    _close(a.scores, b.scores)
    assert a.num_trajectories == len(set(traj.tolist()))


@pytest.mark.parametrize("bad,msg", [
    ("nan", "NaN or inf"), ("inf", "NaN or inf"), ("one_class", "at least 2 classes"),
    ("short", "no trajectory has 3"), ("k_too_big", "Top-K needs"), ("length", "one label per image"),
    ("empty", "no images"), ("vector", "matrix"),
])
def test_bad_input_raises_clear_error(bad, msg):
    x, traj = _data("gauss", 300, 20, 30, seed=2)
    classes, topk = None, (10,)
    if bad == "nan":
        x[5, 3] = np.nan
    elif bad == "inf":
        x[7, 1] = np.inf
    elif bad == "one_class":
        classes = np.zeros(300)
    elif bad == "short":
        traj = np.arange(300) // 2
    elif bad == "k_too_big":
        topk = (25,)
    elif bad == "length":
        traj = traj[:-1]
    elif bad == "empty":
        x, traj = x[:0], traj[:0]
    elif bad == "vector":
        x = x[:, 0]
    with pytest.raises(RISInputError, match=msg):
        compute_ris(x, traj, classes, topk=topk)


def test_nan_error_names_position():
    x, traj = _data("gauss", 300, 20, 30, seed=2)
    x[123, 7] = np.nan
    with pytest.raises(RISInputError, match="image 123, unit 7"):
        compute_ris(x, traj, topk=(10,), chunk_bytes=1000)


def test_classes_without_usable_trajectory_are_reported_and_score_zero():
    x, traj = _data("gauss", 600, 30, 50, seed=9)
    traj = traj.copy()
    traj[:2] = 999  # a 2-image trajectory, its own class
    res = compute_ris(x, traj, topk=(10,))
    assert res.classes_without_trajectories == ["999"]
    assert res.per_class["999"][10] == 0.0
    _close(res.scores, ris_loop(x, traj, topk=(10,))[0])


@pytest.mark.parametrize("device", [None, "cpu"])
def test_bfloat16_tensor_equals_its_float32_values(device):
    """A bfloat16 tensor (mixed-precision model output) was a TypeError (no numpy bfloat16)."""
    import torch

    x, traj = _data("relu", 400, 12, 50, seed=3)
    t = torch.from_numpy(x).bfloat16()
    want, _ = ris_loop(t.float().numpy(), traj, topk=(1, 5))
    _close(compute_ris(t, traj, topk=(1, 5), device=device).scores, want)


@pytest.mark.parametrize("what,labels,msg", [
    ("trajectories", lambda t: np.where(t == 3, np.nan, t.astype(float)), "trajectories: image .* no label \\(NaN\\)"),
    ("classes", lambda t: np.array([None if c == 0 else int(c) for c in t % 4], dtype=object),
     "classes: .* images have no label \\(None/NaN\\)"),
    ("classes", lambda t: np.array([int(c) if i % 2 else str(c) for i, c in enumerate(t % 4)], dtype=object),
     "labels of different types have the same text"),
])
def test_missing_or_ambiguous_labels_are_refused(what, labels, msg):
    """NaN trajectory ids were merged into one trajectory, None became a class 'None', and 1 and
    '1' one class: scores of another grouping than the user's, silently."""
    x, traj = _data("gauss", 200, 6, 30, seed=4)
    kw = {"trajectories": labels(traj), "classes": None} if what == "trajectories" else \
        {"trajectories": traj, "classes": labels(traj)}
    with pytest.raises(RISInputError, match=msg):
        compute_ris(x, topk=(1,), **kw)


def test_int_and_string_labels_give_the_same_scores():
    x, traj = _data("relu", 500, 10, 60, seed=5)
    cls = traj % 7
    straj, scls = [f"t{t}" for t in traj], [str(c) for c in cls]
    a = compute_ris(x, traj, cls, topk=(1, 5))
    b = compute_ris(x, straj, scls, topk=(1, 5))
    want, want_pc = ris_loop(x, traj, cls, topk=(1, 5))
    _close(a.scores, want)
    _close(b.scores, ris_loop(x, straj, scls, topk=(1, 5))[0])  # bit for bit: same trajectory order
    for c in want_pc:  # 't10' < 't2': other summation order, same values to rounding
        assert a.per_class[c] == pytest.approx(b.per_class[c], rel=1e-12) and a.per_class[c] == want_pc[c]


@pytest.mark.parametrize("kw,msg", [
    ({"block_cols": -5}, "block_cols must be an integer >= 0"),  # scored nothing: every score 0.0
    ({"block_cols": -5, "device": "cpu"}, "block_cols must be an integer >= 0"),  # AttributeError on torch
    ({"sample_rows": 0}, "sample_rows must be an integer >= 1"),  # ZeroDivisionError
    ({"max_firing_percentile": -5}, "max_firing_percentile must be in"),  # 'kth out of bounds'
    ({"topk": []}, "topk must be one or more integers"),  # empty scores
    ({"topk": (2.7,)}, "topk must be one or more integers"),  # silently K=2
    ({"min_trajectory_length": 0}, "min_trajectory_length must be an integer >= 1"),
])
def test_bad_options_are_refused(kw, msg):
    x, traj = _data("gauss", 300, 10, 30, seed=6)
    with pytest.raises(RISInputError, match=msg):
        compute_ris(x, traj, **kw)
