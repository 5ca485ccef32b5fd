"""Offline tools on a cluster: one submitit array task per shard, resumable, then one merge.

``tools/extract_frames.py``, ``propose_regions.py`` and ``track_regions.py`` take ``--slurm``:
the command line (less the SLURM options) runs as ``--shard i/n`` in task i of an array job.
Each task that finishes writes ``<out>/slurm/<tool>/done_<i>-of-<n>.json`` (its summary); a rerun of
the same command submits only the shards without one, and once every shard is done the tool's
merge step writes the manifest / index / summary once. Failed shards are reported by id with
their log paths. Executor options mirror VISSL's ``config.SLURM`` (PARTITION, TIME_HOURS, MEM_GB,
NUM_CPU_PER_PROC, COMMENT, CONSTRAINT, NAME). ``--slurm-cluster local`` runs the same array as
local processes through submitit's ``LocalExecutor`` (a try-out on one machine, and the tests).
Each submission is recorded per shard (job id, submitit folder, cluster kind) in
``<out>/slurm/<tool>/submitted.json``: a rerun while those jobs are still pending or running does
not submit their shards again, it waits for them (or, with ``--slurm-no-wait``, lists them as
``running``); a recorded job that ended without its marker is resubmitted. Submissions of one
tool's folder hold ``submit.lock`` there, so two reruns started at once do not both submit a shard.
"""
import argparse
import json
import logging
import math
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from vissl_ext.utils.atomic_io import write_json_atomic

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


def _read_marker(path: str, argv: List[str], warn: bool = True) -> Optional[dict]:
    """The summary a finished task left, or None (absent, unreadable, or another command line)."""
    try:
        with open(path) as f:
            m = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        if warn:
            logging.warning(f"{path}: unreadable shard marker ({e}): the shard runs again")
        return None
    if m.get("argv") != argv:
        if warn:
            logging.warning(f"{path} was written by another command line ({m.get('argv')}): the shard runs again")
        return None
    return m


def submitted_path(out: str, module: str) -> str:
    return os.path.join(slurm_dir(out, module), "submitted.json")


def _read_submitted(out: str, module: str) -> Dict[str, dict]:
    """``{"<i>-of-<n>": {job_id, cluster, folder, argv}}`` of earlier submissions ({} if none)."""
    path = submitted_path(out, module)
    try:
        with open(path) as f:
            return dict(json.load(f)["shards"])
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, KeyError, TypeError) as e:
        logging.warning(f"{path}: unreadable record of submitted jobs ({e}): their shards may be submitted again")
        return {}


def _record_submitted(out: str, module: str, records: Dict[str, dict]):
    """Adds ``records`` to ``submitted.json`` (atomically; the newest job of a shard wins)."""
    merged = _read_submitted(out, module)
    merged.update(records)
    write_json_atomic(submitted_path(out, module), {"shards": merged}, indent=1)


# SLURM states of a job that has not ended: submitit's own list of incomplete states
# (core.InfoWatcher.is_done; PREEMPTED: submitit requeues the job) and SLURM's other non-final ones,
# less UNKNOWN, which is what submitit reports when sacct failed or does not know the job (any more).
_SLURM_ALIVE = {"READY", "PENDING", "RUNNING", "REQUEUED", "COMPLETING", "PREEMPTED", "CONFIGURING", "RESIZING",
                "SUSPENDED", "STOPPED", "SIGNALING", "STAGE_OUT", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD",
                "SPECIAL_EXIT"}
LOCK_TIMEOUT_S = 600.0  # another submission of the same folder holds the lock at most this long
POLL_S = 2.0  # how often a rerun looks at the markers of shards still running from an earlier submission


def _on_nfs(path: str) -> bool:
    """Whether ``path`` lies on NFS (the longest mount point of /proc/mounts that holds it)."""
    path, best, fstype = os.path.realpath(path), "", ""
    try:
        with open("/proc/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) > 2 and (path == parts[1] or path.startswith(parts[1].rstrip("/") + "/")) \
                        and len(parts[1]) > len(best):
                    best, fstype = parts[1], parts[2]
    except OSError:
        return False
    return fstype.startswith("nfs")


def submission_lock(folder: str):
    """The lock of one tool's submissions in ``folder``: reading the markers and records, submitting
    and recording happen under it. fcntl locks are unreliable on NFS, so there a lock file is used
    (filelock's SoftFileLock: a run killed while holding it leaves the file, named in the error)."""
    from filelock import FileLock, SoftFileLock

    cls = SoftFileLock if _on_nfs(folder) else FileLock
    return cls(os.path.join(folder, "submit.lock"), timeout=LOCK_TIMEOUT_S)


def _reattach(record: dict):
    """The submitit job of a recorded submission (its state for SLURM, its log paths for both)."""
    import submitit
    from submitit.local.local import LocalJob

    cls = submitit.SlurmJob if record["cluster"] == "slurm" else LocalJob
    return cls(folder=record["folder"], job_id=str(record["job_id"]))


def local_job_alive(job_id: str, folder: str) -> Tuple[bool, str]:
    """Whether a job of submitit's ``LocalExecutor`` still runs: its job id is the PID of the job's
    controller (``python -m submitit.local._local <folder>``, parent of the task). A zombie, or a
    PID now used by another program, is not the job."""
    try:
        pid = int(job_id)
    except ValueError:
        return False, f"not a local job id {job_id!r}"
    if os.path.isdir("/proc/self"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False, "ENDED"
        if state in ("Z", "X"):
            return False, "ENDED"
        if b"submitit.local._local" not in cmdline or os.fsencode(folder) not in cmdline:
            return False, "ENDED (its PID is another process now)"
        return True, "RUNNING"
    try:  # no /proc: the PID exists; reap it first if it is a child of this process
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False, "ENDED"
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, "ENDED"
    except PermissionError:
        pass
    return True, "RUNNING"


def _job_alive(record: dict, job) -> Tuple[bool, str]:
    """(alive, state) of a recorded job: SLURM through submitit's sacct watcher, local by PID."""
    if record["cluster"] == "slurm":
        state = (str(job.state).split() or ["UNKNOWN"])[0].upper()  # "CANCELLED by 123": CANCELLED
        return state in _SLURM_ALIVE, state
    return local_job_alive(str(record["job_id"]), record["folder"])


def _still_running(out: str, module: str, argv: List[str], shards: List[int], n: int) -> Dict[int, tuple]:
    """``{shard: (record, job)}`` for the unfinished ``shards`` whose recorded job is alive."""
    records = _read_submitted(out, module)
    found = {i: records[f"{i}-of-{n}"] for i in shards if f"{i}-of-{n}" in records}
    found = {i: r for i, r in found.items() if isinstance(r, dict) and r.get("argv") == argv  # else another command
             and r.get("cluster") in ("slurm", "local") and r.get("job_id") and r.get("folder")}
    jobs = {i: _reattach(r) for i, r in found.items()}  # all registered first: one sacct call for all
    running = {}
    for i, r in found.items():
        alive, state = _job_alive(r, jobs[i])
        if alive:
            running[i] = (r, jobs[i])
        else:
            logging.warning(f"shard {i}/{n}: its job {r['job_id']} ({r['cluster']}) is {state} without marking "
                            f"the shard done: submitted again")
    return running


def _wait(jobs: Dict[int, tuple], fresh, out: str, module: str, argv: List[str], n: int) -> List[dict]:
    """Waits until each shard of ``jobs`` ({shard: (record, job)}) has its marker or its job ended;
    returns the failed ones. Jobs of this submission (shards in ``fresh``) are asked through
    submitit (sacct may not know a job yet), earlier ones by :func:`_job_alive`. The marker is
    read again after the state: a job can end in between."""
    failed = []
    while jobs:
        for i, (r, job) in sorted(jobs.items()):
            if _read_marker(marker_path(out, i, n, module), argv, warn=False) is not None:
                del jobs[i]
                continue
            alive, state = (not job.done(), job.state) if i in fresh else _job_alive(r, job)
            if not alive:
                del jobs[i]
                if _read_marker(marker_path(out, i, n, module), argv, warn=False) is None:
                    logging.error(f"shard {i}/{n} failed (job {r['job_id']}): {state} without marking the shard done")
                    failed.append(_failure(i, job))
        if jobs:
            time.sleep(POLL_S)
    return failed


def _failure(shard: int, job) -> dict:
    return {"shard": shard, "job_id": job.job_id, "stderr": str(job.paths.stderr), "stdout": str(job.paths.stdout)}


def run_shard(module: str, argv: List[str], shard: int, num_shards: int, out: str) -> dict:
    """What one array task runs: the tool on its shard, then its marker (last, atomically)."""
    import importlib

    import vissl_ext  # noqa: F401  (compat fixes + registration in the task's process)
    from vissl_ext.cli.common import setup_logging

    setup_logging()
    mod = importlib.import_module(module)
    args = mod.parse_args(list(argv) + ["--shard", f"{shard}/{num_shards}", "--no-progress"])
    summary = mod.run(args)
    write_json_atomic(marker_path(out, shard, num_shards, module), {"argv": list(argv), "summary": summary}, indent=1)
    return summary


def submit_and_merge(module: str, argv: Sequence[str], args, out: str, merge: Callable[[], dict]) -> dict:
    """Submit the unfinished shards of ``module``'s command line, wait, then ``merge()``.

    Returns a summary: shards done / submitted / still ``running`` from an earlier submission (not
    submitted again: waited for) / failed (with log paths); ``ok`` false when a shard failed
    (nothing is merged then). ``--slurm-no-wait``: ``ok`` (the submission worked, exit code 0 for
    scripts) with ``waiting`` and no ``merged``: the rerun merges.
    """
    check_slurm_args(args)
    task_argv = strip_slurm_options(argv)
    n = args.slurm_shards
    os.makedirs(slurm_dir(out, module), exist_ok=True)
    from filelock import Timeout

    lock = submission_lock(slurm_dir(out, module))
    try:
        with lock:
            return _submit_and_merge(module, args, out, merge, task_argv, n, lock)
    except Timeout:
        raise ValueError(f"{lock.lock_file} is held by another submission of this tool for {LOCK_TIMEOUT_S:g} s; "
                         f"if none is running, delete that file and rerun") from None


def _submit_and_merge(module, args, out, merge, task_argv, n, lock) -> dict:
    """submit_and_merge under ``lock``, which is released before waiting for the jobs."""
    done = {i for i in range(n) if _read_marker(marker_path(out, i, n, module), task_argv) is not None}
    running = _still_running(out, module, task_argv, [i for i in range(n) if i not in done], n)
    todo = [i for i in range(n) if i not in done and i not in running]
    summary: Dict = {"shards": n, "already_done": len(done), "submitted": todo, "running": sorted(running),
                     "failed": []}
    if running:
        summary["running_job_ids"] = [running[i][0]["job_id"] for i in sorted(running)]
        logging.info(f"{len(running)} of {n} shards still running from an earlier submission, not submitted "
                     f"again: shards {sorted(running)}, jobs {summary['running_job_ids']}")
    jobs = dict(running)
    if todo:
        ex = make_executor(args, os.path.join(slurm_dir(out, module), "logs", "%j"))
        submitted = ex.map_array(run_shard, [module] * len(todo), [task_argv] * len(todo), todo, [n] * len(todo),
                                 [out] * len(todo))
        summary["job_ids"] = [j.job_id for j in submitted]
        records = {i: {"job_id": j.job_id, "cluster": args.slurm_cluster, "folder": str(ex.folder), "argv": task_argv}
                   for i, j in zip(todo, submitted)}
        _record_submitted(out, module, {f"{i}-of-{n}": r for i, r in records.items()})
        jobs.update({i: (records[i], j) for i, j in zip(todo, submitted)})
        logging.info(f"submitted {len(todo)} of {n} shards ({len(done)} already done): jobs {summary['job_ids']}")
    lock.release()  # recorded: a concurrent rerun now sees these jobs as running
    if args.slurm_no_wait and jobs:
        said = ["jobs submitted"] if todo else []
        said += [f"shards {sorted(running)} still running from an earlier submission"] if running else []
        summary.update(ok=True, waiting=True,
                       message="; ".join(said) + "; rerun the same command once they end to merge")
        return summary
    if running:
        logging.info(f"waiting for {len(running)} shards still running from an earlier submission ("
                     + ", ".join(f"shard {i} job {r['job_id']}" for i, (r, _) in sorted(running.items()))
                     + f"): looking at their markers every {POLL_S:g} s")
    summary["failed"] = _wait(jobs, set(todo), out, module, task_argv, n)
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
