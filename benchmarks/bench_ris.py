#!/usr/bin/env python
"""RIS benchmark, one process, every ratio against a baseline measured in the same run.

Scoring: ALOI's size (N = 72,000 images x D = 2048 units, 1000 trajectories of 72 = class),
ReLU-like float32 features (~69 % exact zeros: ties at the thresholds). ``compute_ris`` (numpy
route on all cores, on one core, on a memmap; the torch route with ``--device``) against the
plain per-trajectory loop of the same rules with full column sorts
(tests/invariance/ris_loop.py). Printed: seconds (wall; CPU seconds for the single-core runs),
speed-ups, whether the scores are bit-for-bit identical, and peak memory allocated during the
call (tracemalloc, numpy's allocations included) relative to the feature matrix.

Extraction: the RIS engine (``config=benchmark/ris/custom``, ResNet-50 at 224 px, CPU) through
the host launcher on ``--extract-images`` images (PASCAL VOC JPEGs from ../shared/data when
present, else generated JPEGs of the same size), once as today's config ran it
(``config.RIS.CAP_CPU_WORKERS=false``: 4 loader workers, default threads) and once as now.
Printed: the model's forward time as a share of the engine's extraction and of the whole
command (interpreter start-up and scoring included).

    python benchmarks/bench_ris.py                          # scoring + extraction (128 images)
    python benchmarks/bench_ris.py --extract-images 0       # scoring only
    python benchmarks/bench_ris.py --device cuda --extract-images 0   # + the torch route on a GPU
    python benchmarks/bench_ris.py --n 20000 --d 512
"""
import argparse
import functools
import glob
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402

from vissl_ext.invariance.ris import compute_ris, default_threads  # noqa: E402

_spec = importlib.util.spec_from_file_location("ris_loop", os.path.join(REPO, "tests", "invariance", "ris_loop.py"))
_loop = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_loop)


def timed(fn, *a, **kw):
    w, c = time.perf_counter(), time.process_time()
    out = fn(*a, **kw)
    return out, time.perf_counter() - w, time.process_time() - c


def median_wall(repeats, fn, *a, **kw):
    runs = [timed(fn, *a, **kw) for _ in range(repeats)]
    return runs[-1][0], statistics.median(r[1] for r in runs), statistics.median(r[2] for r in runs)


def peak_mb(fn, *a, **kw):
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn(*a, **kw)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def same_scores(res, want, want_per_class):
    return res.scores == want and all(res.per_class[c] == want_per_class[c] for c in want_per_class)


def bench_scoring(args):
    rng = np.random.default_rng(0)
    x = np.maximum(rng.standard_normal((args.n, args.d), dtype=np.float32) - 0.5, 0.0)  # ~69 % exact zeros
    traj = np.arange(args.n) // args.traj_len
    feat_mb = x.nbytes / 2**20
    print(f"== scoring: {args.n} x {args.d} float32 = {feat_mb:.0f} MiB, {traj.max() + 1} trajectories "
          f"(class = trajectory), {100 * (x == 0).mean():.0f} % zeros; {default_threads()} cores; "
          f"load average {os.getloadavg()[0]:.1f}")

    topk = tuple(sorted({min(k, args.d) for k in (10, 25)}))  # K <= D units
    ris = functools.partial(compute_ris, topk=topk)
    loop = functools.partial(_loop.ris_loop, topk=topk)
    (want, want_pc), t_loop, c_loop = timed(loop, x, traj)
    print(f"plain loop (baseline)     : {t_loop:7.2f} s wall, {c_loop:6.2f} s CPU   scores {want}")
    res, t_vec, c_vec = median_wall(args.repeats, ris, x, traj)
    same = same_scores(res, want, want_pc)
    print(f"compute_ris, {default_threads()} threads     : {t_vec:7.3f} s wall, {c_vec:6.3f} s CPU   "
          f"speed-up {t_loop / t_vec:5.1f} x (wall)   bit-identical scores: {same}")
    # CPU / wall: how many cores the threads actually got (below ~1.5 of 2: another job had a core)
    print(f"  cores the threads got     : {c_vec / t_vec:.2f} of {default_threads()}")
    res1, t_one, c_one = median_wall(args.repeats, ris, x, traj, threads=1)
    same &= same_scores(res1, want, want_pc)
    print(f"compute_ris, 1 thread      : {t_one:7.3f} s wall, {c_one:6.3f} s CPU   "
          f"speed-up {t_loop / t_one:5.1f} x (wall), {c_loop / c_one:5.1f} x (CPU)")
    m_vec = peak_mb(ris, x, traj)
    print(f"peak memory, in memory    : {m_vec:7.0f} MiB extra = {m_vec / feat_mb:.2f} x the features")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "f.npy")
        np.save(path, x)
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
        res_mm, t_mm, _ = median_wall(args.repeats, ris, mm, traj)
        m_mm = peak_mb(ris, mm, traj)
        same &= same_scores(res_mm, want, want_pc)
        print(f"memmap                    : {t_mm:7.3f} s wall (speed-up {t_loop / t_mm:5.1f} x), peak allocated "
              f"{m_mm:.0f} MiB = {m_mm / feat_mb:.2f} x the features, identical: {same_scores(res_mm, want, want_pc)}")
        del mm
    if args.device:
        import torch

        dev = torch.device(args.device)
        sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)

        def on_device():
            out = ris(x, traj, device=dev)
            sync()
            return out

        on_device()  # start-up: CUDA context, kernels
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        res_t, t_t, _ = median_wall(args.repeats, on_device)
        same &= same_scores(res_t, want, want_pc)
        dev_mem = f", device peak {torch.cuda.max_memory_allocated(dev) / 2**20:.0f} MiB" if dev.type == "cuda" else ""
        print(f"torch route on {args.device:<10} : {t_t:7.3f} s wall (features from host memory){dev_mem}   "
              f"speed-up {t_loop / t_t:5.1f} x vs the loop, {t_vec / t_t:5.2f} x vs numpy   "
              f"identical: {same_scores(res_t, want, want_pc)}")
        if dev.type == "cuda":
            xt = torch.from_numpy(x).to(dev)
            sync()
            res_d, t_d, _ = median_wall(args.repeats, lambda: (ris(xt, traj), sync())[0])
            same &= same_scores(res_d, want, want_pc)
            print(f"torch route, CUDA tensor   : {t_d:7.3f} s wall (features already on the device)   "
                  f"speed-up {t_loop / t_d:5.1f} x vs the loop   identical: {same_scores(res_d, want, want_pc)}")
    if args.baseline_memory:
        m_loop = peak_mb(loop, x, traj)
        print(f"peak memory, plain loop   : {m_loop:7.0f} MiB extra = {m_loop / feat_mb:.2f} x the features")
    print(f"identical scores everywhere: {same}")
    return same


def _bench_images(folder: str, n: int):
    """Paths of n images: the PASCAL VOC samples of ../shared/data, repeated, or generated JPEGs
    of the same size (500 x 375) when the data is absent."""
    voc = sorted(glob.glob(os.path.join(REPO, "..", "shared", "data", "voc_mmfewshot", "VOCdevkit", "VOC2007",
                                        "JPEGImages", "*.jpg")))
    if voc:
        return [voc[i % len(voc)] for i in range(n)], "PASCAL VOC JPEGs (../shared/data), repeated"
    from PIL import Image

    rng = np.random.default_rng(0)
    paths = []
    for i in range(min(n, 16)):
        img = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
        path = os.path.join(folder, f"gen_{i:02d}.jpg")
        Image.fromarray(img).resize((500, 375), Image.BILINEAR).save(path, quality=90)
        paths.append(path)
    return [paths[i % len(paths)] for i in range(n)], "generated 500x375 JPEGs"


def bench_extraction(args):
    from vissl_ext.invariance.manifest import RISEntry, RISManifest

    with tempfile.TemporaryDirectory() as tmp:
        images, what = _bench_images(tmp, args.extract_images)
        entries = [RISEntry(image=p, trajectory=f"t{i // 8:04d}", cls=f"t{i // 8:04d}") for i, p in enumerate(images)]
        manifest = os.path.join(tmp, "manifest.json")
        RISManifest(entries=entries, set="bench", invariance="bench", image_size=224).save(manifest)
        print(f"== extraction: {len(images)} images ({what}), ResNet-50 at 224 px, CPU, "
              f"{default_threads()} cores, load average {os.getloadavg()[0]:.1f}")
        rows = {}
        for name, cap in (("today (4 workers)", "false"), ("now", "true")):
            out = os.path.join(tmp, f"run_{cap}")
            cmd = [sys.executable, os.path.join(REPO, "tools", "run_distributed_engines.py"),
                   "config=benchmark/ris/custom", f"config.DATA.TEST.DATA_PATHS=[{manifest}]",
                   "config.MACHINE.DEVICE=cpu", "config.DISTRIBUTED.BACKEND=gloo", f"config.CHECKPOINT.DIR={out}",
                   "config.RIS.CHART=false", "config.RIS.TOPK=[5,10]", f"config.RIS.CAP_CPU_WORKERS={cap}"]
            t0 = time.perf_counter()
            run = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if run.returncode != 0:
                print(run.stdout[-2000:] + run.stderr[-3000:])
                raise SystemExit(f"the RIS engine failed ({name})")
            with open(os.path.join(out, "features", "EXTRACTED")) as f:
                t = json.load(f)["rank0"]
            rows[name] = (wall, t)
            print(f"{name:<18}: command {wall:6.1f} s, extraction {t['seconds_total']:6.1f} s, model forward "
                  f"{t['seconds_forward']:6.1f} s -> outside the forward {100 * (1 - t['seconds_forward'] / t['seconds_total']):4.1f} % "
                  f"of the extraction, {100 * (1 - t['seconds_forward'] / wall):4.1f} % of the command "
                  f"(setup {t['seconds_setup']:.1f} s, waiting for data {t['seconds_waiting_for_data']:.1f} s)")
        (w0, t0_), (w1, t1) = rows.values()
        print(f"extraction speed-up now vs today: {t0_['seconds_total'] / t1['seconds_total']:.2f} x "
              f"(command {w0 / w1:.2f} x); forward time ratio {t1['seconds_forward'] / t0_['seconds_forward']:.2f} "
              "(load on the machine moves it)")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=72000)
    p.add_argument("--d", type=int, default=2048)
    p.add_argument("--traj-len", type=int, default=72)
    p.add_argument("--repeats", type=int, default=3, help="median of this many calls of compute_ris")
    p.add_argument("--device", default="", help="also the torch route on this device (cuda, cuda:1, cpu)")
    p.add_argument("--extract-images", type=int, default=128, help="0: skip the extraction benchmark")
    p.add_argument("--baseline-memory", action="store_true",
                   help="also trace the plain loop's memory (slow: tracemalloc on its Python loop, minutes)")
    args = p.parse_args()
    for opt, value, low in (("--n", args.n, 3), ("--d", args.d, 1), ("--traj-len", args.traj_len, 3),
                            ("--repeats", args.repeats, 1), ("--extract-images", args.extract_images, 0)):
        if value < low:  # RIS skips trajectories under 3 images: nothing would be measured
            p.error(f"{opt} must be >= {low}, got {value}")
    if args.traj_len >= args.n:
        p.error(f"--traj-len {args.traj_len} must be shorter than --n {args.n} (one trajectory is one class: RIS needs two)")
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            p.error(f"--device {args.device}: CUDA is not available on this machine (torch.cuda.is_available() "
                    "is False); leave --device out or use --device cpu")
    ok = bench_scoring(args)
    if args.extract_images > 0:
        bench_extraction(args)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
