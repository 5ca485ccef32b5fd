"""J and F against hand-computed cases and an independent implementation (distance transforms
instead of dilation), as the DAVIS 2017 evaluation defines them."""
import math
import warnings

import numpy as np
import pytest
from scipy import ndimage

from vissl_ext.downstream.davis_metrics import boundary_f, boundary_map, jaccard, score_sequence, summarise


def _box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_identical_and_disjoint_masks():
    a = _box(100, 120, 20, 60, 30, 80)
    assert jaccard(a, a) == 1.0 and boundary_f(a, a) == 1.0
    b = _box(100, 120, 70, 95, 90, 115)  # far from a: no boundary pixel within 2 px of the other
    assert jaccard(a, b) == 0.0 and boundary_f(a, b) == 0.0


def test_one_pixel_shift():
    a = _box(100, 120, 20, 60, 30, 80)  # 40 x 50
    b = _box(100, 120, 20, 60, 31, 81)
    assert jaccard(a, b) == pytest.approx(40 * 49 / (40 * 51))
    assert boundary_f(a, b) == 1.0  # within ceil(0.008 * 156.2) = 2 px
    # a shift of 3 px leaves the vertical edges out of reach, the horizontal ones within it
    c = _box(100, 120, 20, 60, 33, 83)
    assert 0.0 < boundary_f(a, c) < 1.0


def test_empty_ground_truth_frames():
    empty, a = np.zeros((50, 50), bool), _box(50, 50, 10, 20, 10, 20)
    assert jaccard(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0  # DAVIS: both empty is perfect
    assert jaccard(empty, a) == 0.0 and boundary_f(empty, a) == 0.0  # P = 0, R = 1
    assert jaccard(a, empty) == 0.0 and boundary_f(a, empty) == 0.0  # P = 1, R = 0


def test_boundary_map_of_a_box():
    b = boundary_map(_box(10, 10, 2, 5, 3, 7))
    # the box's own pixels whose right/lower/lower-right neighbour differs, plus the pixels just
    # above-left of it whose lower-right neighbour enters the box
    assert b[4, 3:7].all() and b[2:5, 6].all() and not b[3, 4] and not b[0].any()
    assert b[1, 2] and b[2, 2]  # outside the box, touching it diagonally / from the left


def _f_by_distance(gt, pred, th=0.008):
    """F from Euclidean distance transforms: a boundary pixel matches when the other boundary is
    within the radius (the same disk the dilation uses)."""
    r = math.ceil(th * math.hypot(*gt.shape))
    fb, gb = boundary_map(pred), boundary_map(gt)
    if not fb.any() and not gb.any():
        return 1.0
    if not fb.any() or not gb.any():
        return 0.0
    d_to_g = ndimage.distance_transform_edt(~gb)
    d_to_f = ndimage.distance_transform_edt(~fb)
    p = (d_to_g[fb] <= r).mean()
    rc = (d_to_f[gb] <= r).mean()
    return 0.0 if p + rc == 0 else 2 * p * rc / (p + rc)


@pytest.mark.parametrize("seed", range(6))
def test_f_equals_a_distance_transform_implementation(seed):
    rng = np.random.default_rng(seed)
    h, w = rng.integers(40, 160, size=2)
    gt = ndimage.binary_opening(rng.random((h, w)) < 0.5, iterations=2)
    pred = np.roll(gt, rng.integers(-4, 5, size=2), axis=(0, 1)) ^ (rng.random((h, w)) < 0.01)
    assert boundary_f(gt, pred) == pytest.approx(_f_by_distance(gt, pred), abs=1e-12)


def test_several_objects_first_and_last_frames_not_scored():
    h, w = 60, 80
    gt, pred = [], []
    for t in range(5):
        g = np.zeros((h, w), np.uint8)
        g[10:30, 5 + t:25 + t] = 1
        g[35:55, 40:70] = 2
        p = g.copy()
        if t == 2:
            p[p == 2] = 0  # object 2 lost in frame 2
        if t in (0, 4):
            p[:] = 0  # first and last frames are not scored
        gt.append(g)
        pred.append(p)
    res = score_sequence(gt, pred)
    assert sorted(res) == [1, 2] and res[1]["J"] == [1.0, 1.0, 1.0] and res[2]["J"] == [1.0, 0.0, 1.0]
    assert res[2]["F"] == [1.0, 0.0, 1.0]
    s = summarise({"seq": res})
    assert s["J_mean"] == pytest.approx((1.0 + 2 / 3) / 2) and s["JF_mean"] == pytest.approx((s["J_mean"] + s["F_mean"]) / 2)
    assert s["objects"] == 2


def test_a_sequence_too_short_to_score_gives_none_not_nan():
    """Two frames: DAVIS scores neither (first given, last excluded). That sequence counts in no
    mean; where nothing at all is scored the means are None (summary.json stays valid JSON)."""
    g = np.zeros((20, 20), np.uint8)
    g[5:15, 5:15] = 1
    short = score_sequence([g, g], [g, g])
    assert short == {1: {"J": [], "F": []}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Mean of empty slice"
        s = summarise({"short": short})
        assert s["J_mean"] is None and s["F_mean"] is None and s["JF_mean"] is None and s["objects"] == 0
        both = summarise({"short": short, "long": score_sequence([g] * 3, [g] * 3)})
    assert both["JF_mean"] == 1.0 and both["objects"] == 1 and sorted(both["sequences"]) == ["long"]


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="different shapes"):
        jaccard(np.zeros((2, 2)), np.zeros((2, 3)))
