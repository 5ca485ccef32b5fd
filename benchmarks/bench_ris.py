#!/usr/bin/env python
"""RIS on ALOI's size (N = 72,000 images x D = 2048 units, 1000 trajectories of 72 = class),
vectorised streaming implementation vs the plain per-trajectory loop of the same rules
(tests/invariance/ris_loop.py: full sorts, a loop over trajectories), in the same run.

    python benchmarks/bench_ris.py                 # ALOI size, ReLU-like features (ties at 0)
    python benchmarks/bench_ris.py --n 20000 --d 512

Printed: seconds of each, the speed ratio, whether the scores are identical (to floating-point
rounding), and peak memory allocated during the call (tracemalloc, numpy's allocations
included) relative to the feature matrix, for in-memory features and for a memmap on disk.
One process; the features are generated once, before any timing.
"""
import argparse
import importlib.util
import os
import sys
import tempfile
import time
import tracemalloc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

from vissl_ext.invariance.ris import compute_ris  # noqa: E402

_spec = importlib.util.spec_from_file_location("ris_loop", os.path.join(REPO, "tests", "invariance", "ris_loop.py"))
_loop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_loop)


def timed(fn, *a, **kw):
    t = time.perf_counter()
    out = fn(*a, **kw)
    return out, time.perf_counter() - t


def peak_mb(fn, *a, **kw):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*a, **kw)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=72000)
    p.add_argument("--d", type=int, default=2048)
    p.add_argument("--traj-len", type=int, default=72)
    p.add_argument("--baseline-memory", action="store_true",
                   help="also trace the plain loop's memory (slow: tracemalloc on its Python loop, minutes)")
    args = p.parse_args()

    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((args.n, args.d), dtype=np.float32) - 0.5, 0.0)  # ~69 % exact zeros
    traj = np.arange(args.n) // args.traj_len
    feat_mb = x.nbytes / 2**20
    print(f"features: {args.n} x {args.d} float32 = {feat_mb:.0f} MiB, {traj.max() + 1} trajectories "
          f"(class = trajectory), {100 * (x == 0).mean():.0f} % zeros")

    res, t_vec = timed(compute_ris, x, traj)
    (want, _), t_loop = timed(_loop.ris_loop, x, traj)
    same = all(abs(res.scores[k] - want[k]) <= 1e-12 * max(1.0, abs(want[k])) for k in want)
    print(f"vectorised : {t_vec:7.2f} s   scores {res.scores}")
    print(f"plain loop : {t_loop:7.2f} s   scores {want}")
    print(f"speed-up   : {t_loop / t_vec:7.1f} x   identical scores: {same}")

    m_vec = peak_mb(compute_ris, x, traj)
    print(f"peak memory, vectorised (in memory): {m_vec:7.0f} MiB extra = {m_vec / feat_mb:.2f} x the features "
          f"(features + work: {(feat_mb + m_vec) / feat_mb:.2f} x)")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "f.npy")
        np.save(path, x)
        mm = np.load(path, mmap_mode="r")
        (res_mm, t_mm) = timed(compute_ris, mm, traj)
        m_mm = peak_mb(compute_ris, mm, traj)
        print(f"memmap     : {t_mm:7.2f} s, peak allocated {m_mm:.0f} MiB = {m_mm / feat_mb:.2f} x the features, "
              f"same scores: {res_mm.scores == res.scores}")
    if args.baseline_memory:
        m_loop = peak_mb(_loop.ris_loop, x, traj)
        print(f"peak memory, plain loop: {m_loop:7.0f} MiB extra = {m_loop / feat_mb:.2f} x the features")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
