#!/usr/bin/env python
"""Start-up of the offline tools: ``--help`` of each, wall time and peak memory, beside
``python -c "import json"`` (the interpreter alone) and ``python -c "import torch"`` measured in the
same run. Aim (issue 22): each at most 1.0 s and 200 MB.

    python benchmarks/bench_startup_tools.py                     # this checkout, 5 runs each
    python benchmarks/bench_startup_tools.py --repo /tmp/main --repo . --runs 7   # before / after, one run

Each command runs in a fresh interpreter (cwd: its checkout, so ``python -c`` imports that
checkout's package), round-robin over all commands and checkouts so that the machine's load falls
on all alike; printed per command: the median wall time (s) and the median peak resident memory
(MB, the child's ru_maxrss from wait4) of --runs runs, and the load average before and after.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time

from tabulate import tabulate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OFFLINE_TOOLS = ["extract_frames", "detect_shots", "propose_regions", "build_ris_trajectories", "build_cropped_boxes",
                 "build_gt_tracks", "visualize_tracks", "track_regions", "compute_ris"]
AIM_S, AIM_MB = 1.0, 200


def measure(argv, cwd):
    """(wall seconds, peak RSS in MB) of one run of ``argv``; it must exit 0."""
    t0 = time.perf_counter()
    p = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    err = p.stderr.read().decode(errors="replace")
    p.stderr.close()
    if p.returncode != 0:
        raise SystemExit(f"error: {' '.join(argv)} exited {p.returncode}:\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024  # KiB on Linux


def commands(repo):
    """[(name, argv)] for one checkout: the offline tools' --help and the manifest reader's import."""
    cmds = [(t, [sys.executable, os.path.join(repo, "tools", f"{t}.py"), "--help"]) for t in OFFLINE_TOOLS]
    return cmds + [("import vissl_ext.video.manifest", [sys.executable, "-c", "import vissl_ext.video.manifest"])]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", action="append", help="a checkout to measure (repeatable; default this one)")
    ap.add_argument("--runs", type=int, default=5, help="runs of each command (default 5); the median is printed")
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error(f"--runs must be >= 1, got {args.runs}")
    repos = [os.path.abspath(r) for r in (args.repo or [REPO])]
    for r in repos:
        if not os.path.isfile(os.path.join(r, "tools", "extract_frames.py")):
            ap.error(f"--repo {r}: no tools/extract_frames.py there")
    jobs = [("reference", name, [sys.executable, "-c", code], REPO)
            for name, code in (('python -c "import json"', "import json"), ('python -c "import torch"', "import torch"))]
    jobs += [(r, name, cmd, r) for r in repos for name, cmd in commands(r)]
    load0 = os.getloadavg()
    runs = {(where, name): [] for where, name, _, _ in jobs}
    for _ in range(args.runs):
        for where, name, cmd, cwd in jobs:
            runs[(where, name)].append(measure(cmd, cwd))
    load1 = os.getloadavg()

    def med(where, name):
        r = runs[(where, name)]
        return statistics.median(w for w, _ in r), statistics.median(m for _, m in r)

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, median of {args.runs} runs; load average "
          f"{load0[0]:.1f} before, {load1[0]:.1f} after")
    for where, name, _, _ in jobs[:2]:
        s, mb = med(where, name)
        print(f"  {name}: {s:.2f} s, {mb:.0f} MB")
    headers = ["command"] + [h for r in repos for h in (f"s ({os.path.basename(r)})", f"MB ({os.path.basename(r)})")]
    rows = []
    for name, _ in commands(repos[0]):
        row = [name]
        for r in repos:
            s, mb = med(r, name)
            row += [f"{s:.2f}" + ("" if s <= AIM_S else " *"), f"{mb:.0f}" + ("" if mb <= AIM_MB else " *")]
        rows.append(row)
    print(tabulate(rows, headers, tablefmt="github"))
    print(f"* above the aim ({AIM_S} s, {AIM_MB} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
