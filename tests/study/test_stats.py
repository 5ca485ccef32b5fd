"""The study's intervals against scipy's own: t-interval of a mean, and the paired difference
against the interval of scipy.stats.ttest_rel."""
import math

import pytest
from scipy import stats

from vissl_ext.study.stats import paired_difference, t_interval


def test_t_interval_matches_scipy():
    xs = [71.2, 68.9, 74.0, 70.1]
    ci = t_interval(xs)
    lo, hi = stats.t.interval(0.95, len(xs) - 1, loc=sum(xs) / len(xs), scale=stats.sem(xs))
    assert (ci["low"], ci["high"], ci["n"]) == (pytest.approx(lo), pytest.approx(hi), 4)
    assert ci["mean"] == pytest.approx(sum(xs) / 4)


def test_one_value_has_no_interval():
    ci = t_interval([3.0])
    assert ci["mean"] == 3.0 and math.isnan(ci["half_width"])


def test_paired_difference_pairs_by_seed_and_matches_ttest_rel():
    ft = {0: 40.0, 1: 45.5, 2: 39.0, 7: 99.0}  # seed 7 has no baseline partner: left out
    base = {2: 38.0, 0: 41.0, 1: 42.0}
    d = paired_difference(ft, base)
    assert d["seeds"] == [0, 1, 2] and d["differences"] == [-1.0, 3.5, 1.0]
    lo, hi = stats.ttest_rel([40.0, 45.5, 39.0], [41.0, 42.0, 38.0]).confidence_interval(0.95)
    assert (d["low"], d["high"]) == (pytest.approx(lo), pytest.approx(hi))
    with pytest.raises(ValueError, match="no common seed"):
        paired_difference({0: 1.0}, {1: 2.0})
