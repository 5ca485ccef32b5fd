"""One study cell = one model x one evaluation, run as the project's own command line.

Every model becomes a VISSL checkpoint first (random init from a seed, or the ResNet trunk of a
checkpoint in any layout vissl_ext.utils.checkpoint_layouts reads, renamed to VISSL's trunk keys), so every evaluation takes the same route as a user's:
RIS through ``config=benchmark/ris/custom``, linear probes through the host's benchmark config,
VOC07 SVMs through the host's train_svm flow, ADE20K through tools/train_ade20k_segmentation.py,
DAVIS label propagation (J&F) through tools/propagate_labels.py.
A cell's output lives in ``<out>/cells/<model>__<evaluation>/`` (``log.txt`` of the command,
``run/`` of its outputs); ``result.json`` is written last, atomically, and marks the cell done.
"""
import glob
import json
import os
import subprocess
import sys
import time
from typing import Dict, List

from vissl_ext.study.spec import Evaluation, Model, Study
from vissl_ext.utils.atomic_io import atomic_open, write_json_atomic

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOC07_SVM_CONFIG = "benchmark/linear_image_classification/voc07/eval_resnet_8gpu_transfer_voc07_svm"


class CellFailed(RuntimeError):
    pass


def safe_name(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in s)


def cell_dir(out: str, model: Model, ev: Evaluation) -> str:
    return os.path.join(out, "cells", f"{safe_name(model.name)}__{safe_name(ev.name)}")


def _tool(name: str) -> str:
    path = os.path.join(REPO, "tools", name)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} not found: run the study from a checkout of vissl_ext (tools/ beside the package)")
    return path


def _vissl_checkpoint(trunk_state: dict, path: str):
    import torch

    # the layout VISSL's checkpoint hook writes; every VISSL benchmark config loads it
    with atomic_open(path, "wb") as f:
        torch.save({"classy_state_dict": {"base_model": {"model": {"trunk": trunk_state, "heads": {}}}},
                    "phase_idx": 0, "iteration": 0, "type": "consolidated"}, f)


def prepare_model(m: Model, out: str) -> str:
    """The VISSL checkpoint a model is evaluated from (made once under ``<out>/models/``)."""
    if m.kind == "vissl":
        return m.checkpoint
    import torch

    from vissl_ext.tracking.trunk import build_trunk, compose_model_config
    from vissl_ext.utils.checkpoint_layouts import load_into, read_trunk

    if m.kind == "pretrain":
        return trained_checkpoint(out, m)
    path = os.path.join(out, "models", f"{safe_name(m.name)}.torch")
    if os.path.isfile(path):
        return path
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(m.seed)
        if m.config:  # the trunk a config builds (e.g. the mini study's resnet_small)
            trunk = build_trunk(compose_model_config(m.config, m.overrides))
        else:
            trunk = build_trunk(compose_model_config("pretrain/moco_video_baseline",
                                                     [f"config.MODEL.TRUNK.RESNETS.DEPTH={m.depth}"]))
    if m.kind == "torchvision":
        try:  # any layout checkpoint_layouts knows; refused in one line naming the file if unsafe or misfit
            load_into(trunk, read_trunk(m.weights, flag_hint=False), vissl_names=True, target=f"a ResNet-{m.depth} trunk")
        except ValueError as e:
            raise ValueError(f"model '{m.name}': {e}") from None
    _vissl_checkpoint(trunk.state_dict(), path)
    return path


def train_dir(out: str, m: Model) -> str:
    return os.path.join(out, "train", safe_name(m.name))


def train_command(study: Study, m: Model, out: str) -> List[str]:
    """VISSL pretraining of a ``pretrain`` model on the study's train_data, seeded."""
    return [sys.executable, _tool("run_distributed_engines.py"), f"config={m.config}", f"config.SEED_VALUE={m.seed}",
            f"config.CHECKPOINT.DIR={os.path.join(train_dir(out, m), 'run')}",
            f"config.DATA.TRAIN.DATA_PATHS=[{study.train_data}]", *study.train_overrides, *m.overrides]


def trained_checkpoint(out: str, m: Model) -> str:
    """The final checkpoint of a finished training (its result.json), else FileNotFoundError."""
    res = load_cell_result(train_dir(out, m), key="checkpoint")
    if res is None:
        raise FileNotFoundError(f"model '{m.name}' is not trained yet ({train_dir(out, m)})")
    return res["checkpoint"]


def execute_training(argv: List[str], tdir: str, model_name: str) -> Dict:
    """Run one pretraining (log in ``log.txt``); ``result.json`` (final checkpoint, wall seconds,
    load averages) is written last and marks it done. A half-finished run resumes (AUTO_RESUME).
    Runners sharing ``--out`` train each model once (see ``_once``)."""
    return _once(tdir, "checkpoint", lambda: _train(argv, tdir, model_name))


def _once(folder: str, key: str, work):
    """``work()`` under ``<folder>/.lock``, unless a finished result is there: several runners may
    share one ``--out`` (one per machine, or a second one for some models), and the one that comes
    second waits, then reads the first one's result instead of redoing it."""
    from filelock import FileLock

    os.makedirs(folder, exist_ok=True)
    with FileLock(os.path.join(folder, ".lock")):
        done = load_cell_result(folder, key)
        return done if done is not None else work()


def _train(argv: List[str], tdir: str, model_name: str) -> Dict:
    t0, load0 = time.time(), os.getloadavg()
    rc = _run_logged(argv, tdir)
    ckpts = sorted(glob.glob(os.path.join(tdir, "run", "model_final_checkpoint_phase*.torch")))
    if rc != 0 or not ckpts:
        with open(os.path.join(tdir, "log.txt")) as f:
            tail = f.read()[-1500:]
        raise CellFailed(f"training {model_name}: exit code {rc}, final checkpoint {'found' if ckpts else 'missing'}; "
                         f"log {tdir}/log.txt; last lines:\n{tail}")
    res = {"model": model_name, "checkpoint": ckpts[-1], "seconds": round(time.time() - t0, 1),
           "started": t0, "ended": time.time(), "loadavg_start": load0, "loadavg_end": os.getloadavg()}
    write_json_atomic(os.path.join(tdir, "result.json"), res, indent=1)
    return res


def ris_manifest(out: str, ev: Evaluation) -> str:
    """The RIS manifest of an evaluation: its own, or one built from its object folders (once,
    under ``<out>/prepared/``: each folder one trajectory and one class)."""
    if not ev.folder:
        return ev.manifest
    from vissl_ext.invariance.builders import build_folders

    path = os.path.join(out, "prepared", f"{safe_name(ev.name)}.json")
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        build_folders(ev.folder, invariance=ev.invariance).save(path)
    return path


def cell_command(study: Study, model: Model, ckpt: str, ev: Evaluation, cdir: str) -> List[str]:
    run = os.path.join(cdir, "run")
    vissl = [sys.executable, _tool("run_distributed_engines.py")]
    common = [f"config.MODEL.WEIGHTS_INIT.PARAMS_FILE={ckpt}", f"config.CHECKPOINT.DIR={run}", *study.overrides, *ev.overrides]
    if ev.kind == "ris":
        manifest = ris_manifest(os.path.dirname(os.path.dirname(cdir)), ev)
        return [*vissl, f"config={ev.config or 'benchmark/ris/custom'}", f"config.DATA.TEST.DATA_PATHS=[{manifest}]",
                f"config.RIS.MODEL_NAME={model.name}", *common]
    if ev.kind == "knn":
        overrides = [w for o in ev.overrides for w in ("--override", o)]
        return [sys.executable, "-m", "vissl_ext.study.knn_eval", "--checkpoint", ckpt, "--data", ev.folder,
                "--config", ev.config or "pretrain/moco_video_baseline", *overrides, "--out", run, *ev.args]
    if ev.kind == "linear":
        return [*vissl, f"config={ev.config}", *common]
    if ev.kind == "voc07_svm":
        return [sys.executable, "-m", "vissl_ext.downstream.train_svm", f"config={ev.config or VOC07_SVM_CONFIG}", *common]
    if ev.kind == "ade20k":
        flags = [a for a in ev.args]
        return [sys.executable, _tool("train_ade20k_segmentation.py"), "--dataset-root", ev.dataset_root,
                "--weights", ckpt, "--no-progress", *flags, "OUTPUT_DIR", run]
    if ev.kind == "davis":
        return [sys.executable, _tool("propagate_labels.py"), ev.dataset_root, "--checkpoint", ckpt, "--out", run,
                *ev.args]
    raise ValueError(f"unknown evaluation kind {ev.kind!r}")


def parse_result(ev: Evaluation, cdir: str) -> Dict:
    """The numbers a finished cell produced (metric name -> value), read from its outputs."""
    run = os.path.join(cdir, "run")
    if ev.kind == "ris":
        files = sorted(glob.glob(os.path.join(run, "ris_*.json")))
        if not files:
            raise CellFailed(f"no RIS result in {run}")
        with open(files[0]) as f:
            rec = json.load(f)
        return {"invariance": rec["invariance"], "set": rec["set"],
                "metrics": {f"Top-{k}": float(v) for k, v in rec["scores"].items()}}
    if ev.kind == "linear":
        last = None
        with open(os.path.join(run, "metrics.json")) as f:
            for line in f:
                line = line.strip()
                if line and "test_accuracy_list_meter" in line:
                    last = json.loads(line)
        if last is None:
            raise CellFailed(f"{run}/metrics.json holds no test accuracy")
        top1 = last["test_accuracy_list_meter"]["top_1"]
        head = ev.metric or max(top1, key=lambda h: top1[h])
        if head not in top1:
            raise CellFailed(f"head {head!r} not in {sorted(top1)} ({run}/metrics.json)")
        return {"metrics": {"top-1": float(top1[head])}, "head": head, "all": top1}
    if ev.kind == "voc07_svm":
        import numpy as np

        maps = {}
        for p in sorted(glob.glob(os.path.join(run, "*", "test_ap.npy"))):
            maps[os.path.basename(os.path.dirname(p))] = float(np.mean(np.load(p, allow_pickle=False))) * 100
        if not maps:
            raise CellFailed(f"no <layer>/test_ap.npy under {run}")
        layer = ev.metric or max(maps, key=lambda k: maps[k])
        if layer not in maps:
            raise CellFailed(f"layer {layer!r} not in {sorted(maps)} ({run})")
        return {"metrics": {"mAP": maps[layer]}, "layer": layer, "all": maps}
    if ev.kind == "knn":
        with open(os.path.join(run, "knn.json")) as f:
            res = json.load(f)
        return {"metrics": {"top-1": float(res["metrics"]["top-1"])}, "queries": res["queries"]}
    if ev.kind == "ade20k":
        with open(os.path.join(run, "results.json")) as f:
            res = json.load(f)["sem_seg"]
        return {"metrics": {"mIoU": float(res["mIoU"]), "pACC": float(res["pACC"])}}
    if ev.kind == "davis":
        with open(os.path.join(run, "summary.json")) as f:
            res = json.load(f)
        if res.get("JF_mean") is None:
            raise CellFailed(f"{run}/summary.json has no J&F (no sequence with every frame annotated)")
        # in %, as DAVIS results are reported; J and F beside it, table3 shows J&F
        return {"metrics": {"J&F": 100 * float(res["JF_mean"])}, "J": 100 * float(res["J_mean"]),
                "F": 100 * float(res["F_mean"]), "seconds_per_frame": res["seconds_per_frame"]}
    raise ValueError(ev.kind)


def _run_logged(argv: List[str], cwd: str) -> int:
    """Run a command with its output in ``<cwd>/log.txt`` (the command line first). The command
    imports the same vissl_ext as the runner (``python -m`` from the cell folder would otherwise
    find whichever copy is installed)."""
    path = os.environ.get("PYTHONPATH")
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=REPO + (os.pathsep + path if path else ""))
    with open(os.path.join(cwd, "log.txt"), "w") as f:
        f.write("$ " + " ".join(argv) + "\n")
        f.flush()
        return subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, cwd=cwd, env=env).returncode


def execute_cell(argv: List[str], cdir: str, ev: Evaluation, model_name: str) -> Dict:
    """Run one cell's command (its output into ``log.txt``), read its numbers, write
    ``result.json`` last. Raises CellFailed with the log's tail when the command fails. Runners
    sharing ``--out`` run each cell once."""
    return _once(cdir, "metrics", lambda: _cell(argv, cdir, ev, model_name))


def _cell(argv: List[str], cdir: str, ev: Evaluation, model_name: str) -> Dict:
    log = os.path.join(cdir, "log.txt")
    t0 = time.time()
    rc = _run_logged(argv, cdir)
    if rc != 0:
        with open(log) as f:
            tail = f.read()[-1500:]
        raise CellFailed(f"exit code {rc}; log {log}; last lines:\n{tail}")
    try:
        res = parse_result(ev, cdir)
    except (OSError, KeyError, ValueError) as e:
        raise CellFailed(f"{e} (log {log})")
    res.update(model=model_name, evaluation=ev.name, kind=ev.kind, seconds=round(time.time() - t0, 1))
    write_json_atomic(os.path.join(cdir, "result.json"), res, indent=1)
    return res


def load_cell_result(cdir: str, key: str = "metrics"):
    """A finished cell's (or training's, key ``checkpoint``) result, or None (not run, failed,
    or a half-written file)."""
    try:
        with open(os.path.join(cdir, "result.json")) as f:
            res = json.load(f)
        return res if isinstance(res, dict) and key in res else None
    except (OSError, ValueError):
        return None
