"""Run a study: every model x evaluation cell not done yet, then the paper's tables.

    python tools/run_study.py configs/study/paper_tables.yaml --out results/
    python tools/run_study.py study.yaml --out results/ --only-tables      # tables from finished cells

    python tools/run_study.py configs/study/mini_paper.yaml --out /work/runs/mini     # the paper in miniature

The study file (format: vissl_ext/study/spec.py, example: configs/study/paper_tables.yaml) lists
models (VISSL checkpoints, torchvision state dicts, random init with a seed, or models the study
pretrains itself on its train_data with a seed), evaluations (RIS sets, host linear-probe configs,
VOC07 SVM, ADE20K, a kNN probe on object folders, DAVIS label propagation for J&F) and where to
compute (local, or SLURM through submitit as VISSL's launcher does). Turntable sets named under `generate` are written first.
Resumable: a finished training (<out>/train/<model>/result.json) or cell
(<out>/cells/<model>__<eval>/result.json) is never redone; a failed one is reported with its log
and the others go on. Writes <out>/table1.{md,csv,png} (RIS Top-K per invariance),
<out>/table3.{md,csv,png} (downstream, kNN, DAVIS J&F), with seeds paired.{md,csv,json}, and
<out>/study_summary.json.
"""
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from types import SimpleNamespace

from tqdm import tqdm

from vissl_ext.cli.common import output_dir, parser, run_main
from vissl_ext.study.cells import (
    CellFailed,
    cell_command,
    cell_dir,
    execute_cell,
    execute_training,
    load_cell_result,
    prepare_model,
    train_command,
    train_dir,
)
from vissl_ext.study.spec import StudyError, load_study
from vissl_ext.study.tables import write_tables
from vissl_ext.utils.atomic_io import write_json_atomic


def parse_args(argv=None):
    p = parser(__doc__)
    p.add_argument("study", help="study YAML")
    p.add_argument("--out", required=True, help="results folder (cells, tables, charts)")
    p.add_argument("--only-tables", action="store_true", help="run nothing: tables from the finished cells")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    return run_main(parse_args, run, argv, user_errors=(StudyError, ValueError, FileNotFoundError),
                    shown=lambda s: {k: v for k, v in s.items() if k != "results"})


def _executor(compute: dict, folder: str):
    from vissl_ext.cli.shard_jobs import make_executor

    c = compute
    opts = SimpleNamespace(slurm_cluster="slurm" if c["backend"] == "slurm" else "local",
                           job_name=c.get("job_name", "vissl_ext_study"), time_hours=float(c.get("time_hours", 24)),
                           cpus_per_task=int(c.get("cpus_per_task", 8)), gpus_per_task=int(c.get("gpus_per_task", 0)),
                           mem_gb=int(c.get("mem_gb", 32)), partition=c.get("partition", ""),
                           comment=c.get("comment", ""), constraint=c.get("constraint", ""),
                           array_parallelism=int(c.get("array_parallelism", 64)))
    return make_executor(opts, folder)


def _fill_out(study, out: str):
    """``{out}`` in the study's paths -> the run's output folder."""
    fill = lambda p: p.replace("{out}", os.path.abspath(out)) if p else p  # noqa: E731
    study.train_data = fill(study.train_data)
    for g in study.generate:
        g["out"] = fill(g["out"])
    for e in study.evaluations:
        e.manifest, e.folder = fill(e.manifest), fill(e.folder)


def _run_jobs(backend: str, compute: dict, folder: str, jobs, desc: str, no_progress: bool, on_fail):
    """jobs: (label, function, args) run here (``compute.jobs`` at once), or one submitit job each; returns
    how many succeeded; ``on_fail(label, error)`` for the others."""
    ran = 0
    bar = tqdm(total=len(jobs), desc=desc, unit="job", disable=no_progress)
    if backend == "local":  # `jobs` at once: each job is a subprocess, so threads only wait on them
        with ThreadPoolExecutor(max_workers=int(compute.get("jobs", 1))) as pool:
            futures = {pool.submit(fn, *fargs): label for label, fn, fargs in jobs}
            for fut in as_completed(futures):
                bar.set_postfix_str(futures[fut])
                try:
                    fut.result()
                    ran += 1
                except CellFailed as err:
                    on_fail(futures[fut], err)
                bar.update(1)
    else:  # one submitit job each; the same function runs there
        ex = _executor(compute, os.path.join(folder, "submitit", "%j"))
        submitted = [(label, ex.submit(fn, *fargs)) for label, fn, fargs in jobs]
        logging.info(f"study: submitted {len(submitted)} jobs: {[j.job_id for _, j in submitted]}")
        for label, job in submitted:
            try:
                job.result()
                ran += 1
            except Exception as err:  # the job's own error, or the job died
                on_fail(label, err)
            bar.update(1)
    bar.close()
    return ran


def run(args) -> dict:
    study = load_study(args.study)
    out = args.out
    output_dir(out)
    _fill_out(study, out)
    cells = [(m, e) for e in study.evaluations for m in study.models]
    todo = [(m, e) for m, e in cells if load_cell_result(cell_dir(out, m, e)) is None]
    to_train = [m for m in study.models if m.kind == "pretrain" and load_cell_result(train_dir(out, m), "checkpoint") is None]
    summary = {"study": study.path, "cells": len(cells), "already_done": len(cells) - len(todo), "ran": 0,
               "trained": 0, "failed": [], "backend": study.compute.get("backend", "local")}
    if (todo or to_train) and not args.only_tables:
        t0 = time.time()
        for g in study.generate:
            from vissl_ext.study.turntable import write_turntable

            logging.info(f"study: turntable {g}")
            write_turntable(g["out"], g.get("objects", 100), g.get("poses", 36), g.get("size", 64), g.get("seed", 0),
                            g.get("start", 0))
        for p, what in [(study.train_data, "train_data")] + [(e.folder, f"evaluation '{e.name}' folder")
                                                             for e in study.evaluations]:
            if p and not os.path.exists(p):
                raise StudyError(f"{study.path}: {what} {p} does not exist (nor did 'generate' make it)")

        def failed(label, err, log):
            summary["failed"].append({"cell": label, "error": str(err).splitlines()[0], "log": log})
            logging.error(f"study: {label} failed: {err}")

        logging.info(f"study: {len(to_train)} models to pretrain, {len(cells)} cells, "
                     f"{len(cells) - len(todo)} done, {len(todo)} to run ({summary['backend']})")
        trains = [(f"{m.name} (training)", execute_training, (train_command(study, m, out), train_dir(out, m), m.name))
                  for m in to_train]
        by_label = {f"{m.name} (training)": m for m in to_train}
        summary["trained"] = _run_jobs(summary["backend"], study.compute, out, trains, "pretraining", args.no_progress,
                                       lambda lb, err: failed(lb, err, os.path.join(train_dir(out, by_label[lb]), "log.txt")))
        ckpts = {}
        for m in {m.name: m for m, _ in todo}.values():
            try:
                ckpts[m.name] = prepare_model(m, out)
            except (ValueError, OSError) as e:
                failed(f"{m.name} (model)", e, "")
        jobs = [(f"{m.name} x {e.name}", execute_cell,
                 (cell_command(study, m, ckpts[m.name], e, cell_dir(out, m, e)), cell_dir(out, m, e), e, m.name))
                for m, e in todo if m.name in ckpts]
        logs = {label: os.path.join(fargs[1], "log.txt") for label, _, fargs in jobs}
        summary["ran"] = _run_jobs(summary["backend"], study.compute, out, jobs, "study cells", args.no_progress,
                                   lambda lb, err: failed(lb, err, logs[lb]))
        summary["seconds"] = round(time.time() - t0, 1)
    results = [r for r in (load_cell_result(cell_dir(out, m, e)) for m, e in cells) if r is not None]
    summary["done"] = len(results)
    summary["training"] = [r for r in (load_cell_result(train_dir(out, m), "checkpoint") for m in study.models
                                       if m.kind == "pretrain") if r is not None]
    summary["tables"] = write_tables(results, [m.name for m in study.models], out,
                                     groups={m.name: m.group or m.name for m in study.models},
                                     seeds={m.name: m.seed for m in study.models}, compare=study.compare)
    summary["results"] = results
    summary["ok"] = not summary["failed"]
    write_json_atomic(os.path.join(out, "study_summary.json"), summary, indent=1)
    for name in ("table1.md", "table3.md", "paired.md"):
        if name in summary["tables"]:
            with open(summary["tables"][name]) as f:
                print(f"\n{name}:\n{f.read()}")
    return summary
