"""Offline tools on a cluster: one submitit array task per shard, resumable, then one merge.

``tools/extract_frames.py``, ``propose_regions.py`` and ``track_regions.py`` take ``--slurm``:
the command line (less the SLURM options) runs as ``--shard i/n`` in task i of an array job.
Each task that finishes writes ``<out>/slurm/<tool>/done_<i>-of-<n>.json`` (its summary); a rerun of
the same command submits only the shards without one, and once every shard is done the tool's
merge step writes the manifest / index / summary once. Failed shards are reported by id with
their log paths. Executor options mirror VISSL's ``config.SLURM`` (PARTITION, TIME_HOURS, MEM_GB,
NUM_CPU_PER_PROC, COMMENT, CONSTRAINT, NAME). ``--slurm-cluster local`` runs the same array as
local processes through submitit's ``LocalExecutor`` (a try-out on one machine, and the tests).
"""
import argparse
import json
import logging
import math
import os
import time
from typing import Callable, Dict, List, Optional, Sequence

from vissl_ext.utils_io import write_json_atomic

# option -> takes a value; what is stripped from the command line a task runs
_OPTIONS = {"--slurm": False, "--slurm-shards": True, "--slurm-cluster": True, "--slurm-no-wait": False,
            "--partition": True, "--time-hours": True, "--mem-gb": True, "--cpus-per-task": True,
            "--gpus-per-task": True, "--comment": True, "--constraint": True, "--job-name": True,
            "--array-parallelism": True}


def add_slurm_args(p: argparse.ArgumentParser, gpus_default: int = 0):
    g = p.add_argument_group("cluster (submitit array jobs, one shard per task; options as VISSL's config.SLURM)")
    g.add_argument("--slurm", action="store_true",
                   help="submit the shards as a SLURM array job instead of running here; rerun the same command "
                        "to submit only unfinished shards and to merge once all are done")
    g.add_argument("--slurm-shards", type=int, default=8, help="number of shards = array tasks (default 8)")
    g.add_argument("--slurm-cluster", choices=["slurm", "local"], default="slurm",
                   help="'local': run the array as local processes (submitit LocalExecutor), e.g. to try it out")
    g.add_argument("--slurm-no-wait", action="store_true", help="submit and exit; rerun the command later to merge")
    g.add_argument("--partition", default="", help="SLURM partition (config.SLURM.PARTITION)")
    g.add_argument("--time-hours", type=float, default=24, help="time limit per task in hours (default 24)")
    g.add_argument("--mem-gb", type=int, default=32, help="memory per task (default 32)")
    g.add_argument("--cpus-per-task", type=int, default=8, help="CPUs per task (default 8)")
    g.add_argument("--gpus-per-task", type=int, default=gpus_default, help=f"GPUs per task (default {gpus_default})")
    g.add_argument("--comment", default="", help="SLURM comment")
    g.add_argument("--constraint", default="", help="SLURM constraint")
    g.add_argument("--job-name", default="vissl_ext", help="SLURM job name")
    g.add_argument("--array-parallelism", type=int, default=256, help="at most this many tasks at once")


def strip_slurm_options(argv: Sequence[str]) -> List[str]:
    """The command line a task runs: ``argv`` without the options of :func:`add_slurm_args`."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        name = a.split("=", 1)[0]
        if name in _OPTIONS:
            skip = _OPTIONS[name] and "=" not in a
            continue
        out.append(a)
    return out


def check_slurm_args(args):
    if args.shard:
        raise ValueError("--shard and --slurm do not go together: --slurm-shards N sets the shards")
    if args.slurm_shards < 1:
        raise ValueError(f"--slurm-shards must be >= 1, got {args.slurm_shards}")
    if args.slurm_cluster == "slurm" and not args.partition:
        raise ValueError("--slurm needs --partition (as VISSL's config.SLURM.PARTITION)")
    if not (math.isfinite(args.time_hours) and args.time_hours > 0):  # nan/inf: no SLURM time limit to write
        raise ValueError(f"--time-hours must be a positive number of hours, got {args.time_hours}")
    for opt, value, low in (("--mem-gb", args.mem_gb, 1), ("--cpus-per-task", args.cpus_per_task, 1),
                            ("--gpus-per-task", args.gpus_per_task, 0),
                            ("--array-parallelism", args.array_parallelism, 1)):
        if value < low:
            raise ValueError(f"{opt} must be >= {low}, got {value}")


def timeout_minutes(hours: float) -> int:
    """SLURM's time limit in whole minutes, rounded up: 0 would mean no limit to SLURM."""
    return max(1, math.ceil(hours * 60))


def make_executor(args, folder: str):
    """A submitit executor from the options of :func:`add_slurm_args`, as VISSL builds its own."""
    import submitit

    ex = submitit.AutoExecutor(folder=folder, cluster=args.slurm_cluster)
    params = dict(name=args.job_name, timeout_min=timeout_minutes(args.time_hours), nodes=1, tasks_per_node=1,
                  cpus_per_task=args.cpus_per_task, gpus_per_node=args.gpus_per_task, mem_gb=args.mem_gb)
    if args.slurm_cluster == "slurm":
        params.update(slurm_partition=args.partition, slurm_comment=args.comment, slurm_constraint=args.constraint,
                      slurm_array_parallelism=args.array_parallelism)
    ex.update_parameters(**params)
    return ex


def slurm_dir(out: str, module: str) -> str:
    """``<out>/slurm/<tool>``: one folder per tool, as detect_shots shares extract_frames' output
    folder (with one folder, each tool's markers made the other resubmit every shard)."""
    return os.path.join(out, "slurm", module.rsplit(".", 1)[-1].replace("_cli", ""))


def marker_path(out: str, shard: int, num_shards: int, module: str) -> str:
    return os.path.join(slurm_dir(out, module), f"done_{shard}-of-{num_shards}.json")


def _read_marker(path: str, argv: List[str]) -> Optional[dict]:
    """The summary a finished task left, or None (absent, unreadable, or another command line)."""
    try:
        with open(path) as f:
            m = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        logging.warning(f"{path}: unreadable shard marker ({e}): the shard runs again")
        return None
    if m.get("argv") != argv:
        logging.warning(f"{path} was written by another command line ({m.get('argv')}): the shard runs again")
        return None
    return m


def run_shard(module: str, argv: List[str], shard: int, num_shards: int, out: str) -> dict:
    """What one array task runs: the tool on its shard, then its marker (last, atomically)."""
    import importlib

    import vissl_ext  # noqa: F401  (compat fixes + registration in the task's process)
    from vissl_ext.cli_common import setup_logging

    setup_logging()
    mod = importlib.import_module(module)
    args = mod.parse_args(list(argv) + ["--shard", f"{shard}/{num_shards}", "--no-progress"])
    summary = mod.run(args)
    write_json_atomic(marker_path(out, shard, num_shards, module), {"argv": list(argv), "summary": summary}, indent=1)
    return summary


def submit_and_merge(module: str, argv: Sequence[str], args, out: str, merge: Callable[[], dict]) -> dict:
    """Submit the unfinished shards of ``module``'s command line, wait, then ``merge()``.

    Returns a summary: shards done / submitted / failed (with log paths); ``ok`` false when a
    shard failed (nothing is merged then). ``--slurm-no-wait``: ``ok`` (the submission worked, exit
    code 0 for scripts) with ``waiting`` and no ``merged``: the rerun merges.
    """
    check_slurm_args(args)
    task_argv = strip_slurm_options(argv)
    n = args.slurm_shards
    os.makedirs(slurm_dir(out, module), exist_ok=True)
    done = {i for i in range(n) if _read_marker(marker_path(out, i, n, module), task_argv) is not None}
    todo = [i for i in range(n) if i not in done]
    summary: Dict = {"shards": n, "already_done": len(done), "submitted": todo, "failed": []}
    if todo:
        ex = make_executor(args, os.path.join(slurm_dir(out, module), "logs", "%j"))
        jobs = ex.map_array(run_shard, [module] * len(todo), [task_argv] * len(todo), todo, [n] * len(todo),
                            [out] * len(todo))
        summary["job_ids"] = [j.job_id for j in jobs]
        logging.info(f"submitted {len(todo)} of {n} shards ({len(done)} already done): jobs {summary['job_ids']}")
        if args.slurm_no_wait:
            summary.update(ok=True, waiting=True,
                           message="jobs submitted; rerun the same command once they end to merge")
            return summary
        for i, job in zip(todo, jobs):
            try:
                job.result()
            except Exception as e:  # the task died, was killed or timed out: report it, keep waiting for others
                logging.error(f"shard {i}/{n} failed (job {job.job_id}): {str(e).splitlines()[0] if str(e) else type(e).__name__}")
            if _read_marker(marker_path(out, i, n, module), task_argv) is None:
                summary["failed"].append({"shard": i, "job_id": job.job_id, "stderr": str(job.paths.stderr),
                                          "stdout": str(job.paths.stdout)})
    if summary["failed"]:
        ids = [f["shard"] for f in summary["failed"]]
        logging.error(f"{len(ids)} of {n} shards failed ({ids}); logs: "
                      + ", ".join(f["stderr"] for f in summary["failed"])
                      + ". Rerun the same command to resubmit only those; nothing merged yet.")
        summary["ok"] = False
        return summary
    t0 = time.time()
    summary["merged"] = merge()
    summary["merge_s"] = round(time.time() - t0, 2)
    summary["ok"] = True
    return summary


def merge_shard_summaries(out: str, num_shards: int, name: str, module: str) -> dict:
    """The shards' summaries (from their markers) added up into ``<out>/<name>``: numbers are
    summed, lists concatenated; the per-shard values are kept under ``shards``."""
    shards = []
    for i in range(num_shards):
        with open(marker_path(out, i, num_shards, module)) as f:
            shards.append(json.load(f)["summary"])
    total: Dict = {}
    for s in shards:
        for k, v in s.items():
            if isinstance(v, bool) or k == "shard":
                continue
            if isinstance(v, (int, float)):
                total[k] = total.get(k, 0) + v
            elif isinstance(v, list):
                total[k] = total.get(k, []) + v
    total["ok"] = all(s.get("ok", True) for s in shards)
    total["shards"] = [s.get("shard") for s in shards]
    write_json_atomic(os.path.join(out, name), total, indent=1)
    return {"summary": os.path.join(out, name), **{k: v for k, v in total.items() if not isinstance(v, list)}}
