"""Run a study: every model x evaluation cell not done yet, then the paper's tables.

    python tools/run_study.py configs/study/paper_tables.yaml --out results/
    python tools/run_study.py study.yaml --out results/ --only-tables      # tables from finished cells

The study file (format: vissl_ext/study/spec.py, example: configs/study/paper_tables.yaml) lists
models (VISSL checkpoints, torchvision state dicts, random init with a seed), evaluations (RIS sets,
host linear-probe configs, VOC07 SVM, ADE20K) and where to compute (local, or SLURM through
submitit as VISSL's launcher does). Resumable: a finished cell (<out>/cells/<model>__<eval>/result.json)
is never redone; a failed cell is reported with its log and the others go on. Writes
<out>/table1.{md,csv,png} (RIS Top-K per invariance), <out>/table3.{md,csv,png} (downstream) and
<out>/study_summary.json.
"""
import logging
import os
import time
from types import SimpleNamespace

from tqdm import tqdm

from vissl_ext.cli.common import output_dir, parser, run_main
from vissl_ext.study.cells import (
    CellFailed,
    cell_command,
    cell_dir,
    execute_cell,
    load_cell_result,
    prepare_model,
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


def run(args) -> dict:
    study = load_study(args.study)
    out = args.out
    output_dir(out)
    cells = [(m, e) for e in study.evaluations for m in study.models]
    todo = [(m, e) for m, e in cells if load_cell_result(cell_dir(out, m, e)) is None]
    summary = {"study": study.path, "cells": len(cells), "already_done": len(cells) - len(todo), "ran": 0,
               "failed": [], "backend": study.compute.get("backend", "local")}
    if todo and not args.only_tables:
        logging.info(f"study: {len(cells)} cells, {len(cells) - len(todo)} done, {len(todo)} to run "
                     f"({summary['backend']})")
        ckpts = {}
        for m in {m.name: m for m, _ in todo}.values():
            try:
                ckpts[m.name] = prepare_model(m, out)
            except (ValueError, OSError) as e:
                summary["failed"].append({"cell": f"{m.name} (model)", "error": str(e)})
                logging.error(f"study: model '{m.name}' cannot be prepared: {e}")
        jobs = [(m, e, cell_command(study, m, ckpts[m.name], e, cell_dir(out, m, e)), cell_dir(out, m, e))
                for m, e in todo if m.name in ckpts]
        bar = tqdm(total=len(jobs), desc="study cells", unit="cell", disable=args.no_progress)
        t0 = time.time()

        def failed(m, e, err):
            summary["failed"].append({"cell": f"{m.name} x {e.name}", "error": str(err).splitlines()[0],
                                      "log": os.path.join(cell_dir(out, m, e), "log.txt")})
            logging.error(f"study: cell {m.name} x {e.name} failed: {err}")

        if summary["backend"] == "local":
            for m, e, argv, cdir in jobs:
                bar.set_postfix_str(f"{m.name} x {e.name}")
                try:
                    execute_cell(argv, cdir, e, m.name)
                    summary["ran"] += 1
                except CellFailed as err:
                    failed(m, e, err)
                bar.update(1)
        else:  # one submitit job per cell; the same function runs there
            ex = _executor(study.compute, os.path.join(out, "submitit", "%j"))
            submitted = [(m, e, ex.submit(execute_cell, argv, cdir, e, m.name)) for m, e, argv, cdir in jobs]
            logging.info(f"study: submitted {len(submitted)} jobs: {[j.job_id for _, _, j in submitted]}")
            for m, e, job in submitted:
                try:
                    job.result()
                    summary["ran"] += 1
                except Exception as err:  # the job's own error, or the job died
                    failed(m, e, err)
                bar.update(1)
        bar.close()
        summary["seconds"] = round(time.time() - t0, 1)
    results = [r for r in (load_cell_result(cell_dir(out, m, e)) for m, e in cells) if r is not None]
    summary["done"] = len(results)
    summary["tables"] = write_tables(results, [m.name for m in study.models], out)
    summary["results"] = results
    summary["ok"] = not summary["failed"]
    write_json_atomic(os.path.join(out, "study_summary.json"), summary, indent=1)
    for name in ("table1.md", "table3.md"):
        if name in summary["tables"]:
            with open(summary["tables"][name]) as f:
                print(f"\n{name}:\n{f.read()}")
    return summary
