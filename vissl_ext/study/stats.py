"""Seeds -> numbers with an uncertainty: mean with a two-sided Student-t confidence interval, and
the paired per-seed difference of two methods (same seeds on both sides)."""
import math
from typing import Dict, Mapping, Sequence


def t_interval(values: Sequence[float], level: float = 0.95) -> Dict[str, float]:
    """mean, half-width, low, high and n of the t-interval mean +- t_{(1+level)/2, n-1} * sd / sqrt(n)
    (sd with n-1 degrees of freedom). With one value the half-width is NaN: no interval."""
    from scipy import stats

    n = len(values)
    if n == 0:
        raise ValueError("a confidence interval needs at least one value")
    mean = math.fsum(values) / n
    if n == 1:
        hw = float("nan")
    else:
        sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
        hw = float(stats.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "half_width": hw, "low": mean - hw, "high": mean + hw, "n": n}


def paired_difference(a: Mapping[int, float], b: Mapping[int, float], level: float = 0.95) -> Dict:
    """a - b over the seeds both have: per-seed differences and their t-interval."""
    seeds = sorted(set(a) & set(b))
    if not seeds:
        raise ValueError(f"no common seed to pair (seeds {sorted(a)} and {sorted(b)})")
    diffs = [a[s] - b[s] for s in seeds]
    return {"seeds": seeds, "differences": diffs, **t_interval(diffs, level)}
