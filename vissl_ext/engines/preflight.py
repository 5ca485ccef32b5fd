"""User errors found before any worker starts (the launcher, after compose and validation;
composition errors and misspelled keys are :func:`vissl_ext.config.compose_config`'s).

- :func:`check_devices`: ``MACHINE.DEVICE=gpu`` on a machine with fewer GPUs than
  ``NUM_PROC_PER_NODE`` names the overrides that run on what the machine has.
- :func:`check_amp`: ``USE_AMP`` with ``AMP_TYPE=apex`` (VISSL's default) on a machine without
  NVIDIA apex names ``AMP_TYPE=pytorch`` (PyTorch's own AMP), instead of a RuntimeError in every
  worker. AMP on CPU and unknown AMP types are config errors (vissl_ext/config.py).
- :func:`check_data_paths`: every data source of a split the run uses that has a
  ``check_data_path(cfg, path, split)`` classmethod (ours: video_frames, video_frame_pairs,
  video_region_pairs, ris_manifest; other projects may add theirs) reads its path the way its
  workers will (manifest readers, tracks index), so a missing path, an empty folder, invalid JSON
  or a manifest listing missing files fails here, not in rank 0 after the workers started.
- :func:`vissl_ext.hooks.monitor_hook.check_monitor_paths`: the sets an enabled online monitor
  names (config.MONITOR) read, so a bad monitor path is an ``error:`` line, not a crash at the
  first evaluation days later.
- :func:`check_slurm` (``config.SLURM.USE_SLURM=true``), before anything is submitted: submitit
  installed; NUM_NODES / NUM_PROC_PER_NODE against the GPUs requested (ADDITIONAL_PARAMETERS, and the
  partition's nodes and GPUs where ``sinfo`` runs); PARTITION set, and known to ``sinfo`` where it runs
  (without ``sinfo`` only that it is set: a warning says so); a time limit that holds one checkpoint
  period (:func:`checkpoint_period`); a CHECKPOINT.DIR every node can reach when NUM_NODES > 1 (node-local
  /tmp-like paths refused, ``+config.SLURM.CHECKPOINT_DIR_IS_SHARED=true`` where such a path is shared);
  ``sbatch`` and ``srun`` on this machine.
- :func:`stamp_validated`: what the checks validated in full goes into a stamp in the checkpoint
  folder (vissl_ext.utils.validation_stamp), and the ranks started by this launcher skip the
  file-existence checks on the same unchanged manifests: on a Kinetics-scale manifest of frame
  folders those checks were about 30% of each rank's read, warm cache (benchmarks/bench_startup.py).

These checks stay out of :func:`vissl_ext.config.validate_config`: tests and tools compose
configs for other machines, and without their data.
"""
import math
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from typing import List, Optional

from vissl_ext.config import ConfigError, did_you_mean, need_int
from vissl_ext.hooks.monitor_hook import check_monitor_paths
from vissl_ext.utils.validation_stamp import STAMP_ENV, write_stamp

CPU_OVERRIDES = "config.MACHINE.DEVICE=cpu config.DISTRIBUTED.BACKEND=gloo config.DISTRIBUTED.NUM_PROC_PER_NODE=1"


def check_devices(config):
    """Enough GPUs on this machine for NUM_PROC_PER_NODE (SLURM jobs: the nodes have them)."""
    if config.SLURM.USE_SLURM or config.MACHINE.DEVICE != "gpu":
        return
    import torch

    want, have = int(config.DISTRIBUTED.NUM_PROC_PER_NODE), torch.cuda.device_count()
    if have >= want:
        return
    fix = CPU_OVERRIDES if have == 0 else f"config.DISTRIBUTED.NUM_PROC_PER_NODE={have}"
    found = "no GPU" if have == 0 else f"{have} GPU{'s' if have > 1 else ''}"
    raise ConfigError(f"{want} GPUs asked (config.MACHINE.DEVICE=gpu config.DISTRIBUTED.NUM_PROC_PER_NODE={want}) but "
                      f"this machine has {found}: run with {fix}")


def check_amp(config):
    """Apex AMP asked on a machine where ``import apex`` fails (as VISSL checks it)."""
    amp = config.MODEL.AMP_PARAMS
    if not amp.USE_AMP or str(amp.AMP_TYPE).lower() != "apex":
        return
    from vissl.utils.misc import is_apex_available

    if not is_apex_available():
        raise ConfigError("config.MODEL.AMP_PARAMS.USE_AMP=true with AMP_TYPE=apex (VISSL's default), but apex is not "
                          "installed: use PyTorch's AMP with config.MODEL.AMP_PARAMS.AMP_TYPE=pytorch")


def _used_splits(config) -> List[str]:
    # as VISSL's SelfSupervisionTask.set_available_splits
    return (["TEST"] if config.TEST_MODEL else []) + ([] if config.TEST_ONLY else ["TRAIN"])


def check_data_paths(config) -> List[dict]:
    """Raises ConfigError for a user error; returns the stamp keys of the files validated in full
    (what a source's ``check_data_path`` returns; None: nothing to stamp)."""
    from vissl.data import DATASET_SOURCE_MAP
    from vissl.data.dataset_catalog import VisslDatasetCatalog

    validated = []
    for split in _used_splits(config):
        d = config.DATA[split]
        sources, paths, names = list(d.DATA_SOURCES or []), list(d.DATA_PATHS or []), list(d.DATASET_NAMES or [])
        if paths and len(paths) != len(sources):
            raise ConfigError(f"config.DATA.{split}.DATA_PATHS lists {len(paths)} paths for {len(sources)} "
                              f"DATA_SOURCES {sources}: give one path per source")
        for i, source in enumerate(sources):
            check = getattr(DATASET_SOURCE_MAP.get(source), "check_data_path", None)
            if check is None:
                continue
            if paths:
                path, where = paths[i], f"config.DATA.{split}.DATA_PATHS"
            else:
                name = names[i] if i < len(names) else None
                if name is None or not VisslDatasetCatalog.has_data(name):
                    raise ConfigError(f"config.DATA.{split}.DATA_PATHS is empty and dataset {name!r} is not in VISSL's "
                                      f"catalog: give config.DATA.{split}.DATA_PATHS=[...]")
                path = VisslDatasetCatalog.get(name)["train" if split == "TRAIN" else "val"][0]
                where = f"config.DATA.{split}.DATA_PATHS (empty; dataset {name}'s default path)"
            try:
                validated += check(config, path, split) or []
            except ConfigError:
                raise
            except (ValueError, OSError) as e:
                raise ConfigError(f"{where}: {e}") from e
    return validated


# --------------------------------------------------------------------------------------------
# SLURM
# --------------------------------------------------------------------------------------------
# An optimistic rate, above what ResNet-50 training reaches on current GPUs (about 2,500 images/s on
# an A100 with AMP), so that the time-limit check only refuses limits that no GPU could meet.
MAX_IMAGES_PER_S = 4000
VIEWS_PER_SAMPLE = 2  # a query and a key per sample (MoCo and ours)
SIGNAL_DELAY_S = 90  # submitit's SLURM warning signal, this long before the time limit
NODE_LOCAL = ("/tmp", "/var/tmp", "/dev/shm", "/run", "/local", "/scratch/local")
SHARED_OVERRIDE = "+config.SLURM.CHECKPOINT_DIR_IS_SHARED=true"
# ADDITIONAL_PARAMETERS keys (submitit's spelling and sbatch's) that set GPUs per node / in all
_GPU_KEYS = {"gpus_per_node": "node", "gpus-per-node": "node", "gres": "node", "gpus": "job"}


def _gpu_count(key: str, value) -> Optional[int]:
    """GPUs in a ``gres`` value ("gpu:8", "gpu:a100:8") or a GPU count (8, "a100:8"); None: none."""
    v = str(value).split(",")[0].split("(")[0].strip()
    m = re.fullmatch(r"gpu(?::[\w.-]+)?:(\d+)" if key == "gres" else r"(?:[\w.-]+:)?(\d+)", v)
    return int(m.group(1)) if m else None


def _train_samples(config) -> Optional[int]:
    """Samples per epoch: DATA_LIMIT, else frames of our video manifests (about one pair per
    frame); None when unknown (host data sources)."""
    d = config.DATA.TRAIN
    if int(d.DATA_LIMIT) > 0:
        return int(d.DATA_LIMIT)
    from vissl_ext.video.manifest import load_manifest
    from vissl_ext.video.tracks_io import load_tracks_index

    total = 0
    for source, path in zip(d.DATA_SOURCES or [], d.DATA_PATHS or []):
        try:
            if source == "video_region_pairs":
                path = load_tracks_index(path)[0]
            elif os.path.isdir(path):
                path = os.path.join(path, "manifest.json")
            total += sum(v.num_frames for v in load_manifest(path))
        except Exception:  # a folder of videos, a host source: not counted here
            return None
    return total or None


def checkpoint_period(config):
    """(iterations between checkpoints, a lower bound of their time in seconds, description) or
    None when the epoch's length is unknown. The bound assumes MAX_IMAGES_PER_S per process."""
    world = int(config.DISTRIBUTED.NUM_NODES) * int(config.DISTRIBUTED.NUM_PROC_PER_NODE)
    batch = int(config.DATA.TRAIN.BATCHSIZE_PER_REPLICA)
    ck = config.CHECKPOINT
    if int(ck.CHECKPOINT_ITER_FREQUENCY) > 0:
        iters, what = int(ck.CHECKPOINT_ITER_FREQUENCY), f"CHECKPOINT_ITER_FREQUENCY={ck.CHECKPOINT_ITER_FREQUENCY}"
    else:
        samples = _train_samples(config)
        if samples is None:
            return None
        per_epoch = math.ceil(samples / (batch * world))
        iters = int(ck.CHECKPOINT_FREQUENCY) * per_epoch
        what = (f"CHECKPOINT_FREQUENCY={ck.CHECKPOINT_FREQUENCY} epoch{'s' if ck.CHECKPOINT_FREQUENCY != 1 else ''} "
                f"of {per_epoch} iterations ({samples} samples / batch {batch} x {world} processes)")
    return iters, iters * batch * VIEWS_PER_SAMPLE / MAX_IMAGES_PER_S, what


def _sinfo(partition: str):
    """({"nodes": count, "gpus": most GPUs of a node} of the partition, the partitions sinfo lists);
    the first is {} when sinfo is unavailable or fails, None when sinfo does not know the partition."""
    if shutil.which("sinfo") is None:
        return {}, []
    try:
        out = subprocess.run(["sinfo", "-h", "-o", "%P %D %G"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return {}, []
    found, names = None, []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        name = parts[0].rstrip("*")  # sinfo marks the default partition with *
        names.append(name)
        if name == partition:
            found = found or {"nodes": 0, "gpus": 0}
            found["nodes"] += int(parts[1]) if parts[1].isdigit() else 0
            gpus = [_gpu_count("gres", g) or 0 for g in parts[2].split(",")]
            found["gpus"] = max([found["gpus"], *gpus])
    return found, sorted(set(names))


def check_slurm(config):
    """What a SLURM submission needs, checked before anything is submitted (module docstring)."""
    if not config.SLURM.USE_SLURM:
        return
    try:
        import submitit  # noqa: F401
    except ImportError:
        raise ConfigError("config.SLURM.USE_SLURM=true needs submitit, which is not installed: pip install "
                          "submitit==1.5.4 (requirements.txt)") from None
    dist, slurm = config.DISTRIBUTED, config.SLURM
    nodes = need_int(dist.NUM_NODES, "config.DISTRIBUTED.NUM_NODES", 1)
    procs = need_int(dist.NUM_PROC_PER_NODE, "config.DISTRIBUTED.NUM_PROC_PER_NODE", 1)
    gpu = config.MACHINE.DEVICE == "gpu"
    for key, value in dict(slurm.ADDITIONAL_PARAMETERS or {}).items():
        scope = _GPU_KEYS.get(str(key))
        count = _gpu_count(str(key), value) if scope else None
        want = procs if scope == "node" else nodes * procs
        if count is not None and count != (want if gpu else 0):
            asks = f"{want} GPUs {'per node' if scope == 'node' else 'in all'}" if gpu else "no GPU (MACHINE.DEVICE=cpu)"
            raise ConfigError(f"config.SLURM.ADDITIONAL_PARAMETERS.{key}={value} requests {count} GPUs"
                              f"{' per node' if scope == 'node' else ''}, but config.DISTRIBUTED.NUM_NODES={nodes} x "
                              f"NUM_PROC_PER_NODE={procs} asks {asks}: drop the key (the launcher requests "
                              f"NUM_PROC_PER_NODE GPUs per node) or set NUM_PROC_PER_NODE to the GPUs of a node")
    if not str(slurm.PARTITION or "").strip():
        raise ConfigError("config.SLURM.PARTITION is empty: name the partition to submit to (sinfo lists them)")
    limit_min = int(slurm.TIME_HOURS) * 60 + int(slurm.TIME_MINUTES)
    period = None if config.TEST_ONLY else checkpoint_period(config)
    if limit_min > 0 and period is not None and period[1] > limit_min * 60 - SIGNAL_DELAY_S:
        iters, seconds, what = period
        raise ConfigError(
            f"config.SLURM.TIME_HOURS={slurm.TIME_HOURS} TIME_MINUTES={slurm.TIME_MINUTES} is shorter than one checkpoint "
            f"period: {what} take at least {seconds / 60:.0f} min even at {MAX_IMAGES_PER_S} images/s per GPU, and a job "
            f"requeued at its time limit would restart from the same checkpoint forever: checkpoint more often "
            f"(config.CHECKPOINT.CHECKPOINT_ITER_FREQUENCY=N) or ask for more time")
    shared = bool(slurm.get("CHECKPOINT_DIR_IS_SHARED", False))
    if nodes > 1 and not shared:
        ckdir = os.path.realpath(os.path.abspath(str(config.CHECKPOINT.DIR)))
        local = [p for p in (*NODE_LOCAL, os.environ.get("TMPDIR")) if p and (ckdir + "/").startswith(p.rstrip("/") + "/")]
        if local:
            raise ConfigError(f"config.CHECKPOINT.DIR={config.CHECKPOINT.DIR} is under {local[0]}, local to each node, but "
                              f"NUM_NODES={nodes}: the nodes must share the checkpoints (rank 0 writes them, every node "
                              f"resumes from them); give a folder on a shared file system, or, where {local[0]} is "
                              f"shared, {SHARED_OVERRIDE}")
    missing = [tool for tool in ("sbatch", "srun") if shutil.which(tool) is None]  # submitit needs both
    if missing:
        raise ConfigError(f"config.SLURM.USE_SLURM=true but this machine has no {' and no '.join(missing)} on its PATH: "
                          f"submit from a SLURM login node (without SLURM, see docs/cluster.md: DISTRIBUTED.INIT_METHOD=tcp)")
    part, names = _sinfo(str(slurm.PARTITION))
    if part is None:
        raise ConfigError(f"config.SLURM.PARTITION={slurm.PARTITION} is not a partition of this cluster"
                          f"{did_you_mean(str(slurm.PARTITION), names)}; sinfo lists {names}")
    if not part:
        print(f"warning: sinfo not found: config.SLURM.PARTITION={slurm.PARTITION}, its nodes and GPUs are not checked "
              f"(only that a partition is named)", file=sys.stderr)
        return
    if part["nodes"] and nodes > part["nodes"]:
        raise ConfigError(f"config.DISTRIBUTED.NUM_NODES={nodes} but partition {slurm.PARTITION} has {part['nodes']} "
                          f"nodes (sinfo)")
    if gpu and procs > part["gpus"]:
        raise ConfigError(f"config.DISTRIBUTED.NUM_PROC_PER_NODE={procs} GPUs per node requested, but the nodes of "
                          f"partition {slurm.PARTITION} have at most {part['gpus']} (sinfo): set NUM_PROC_PER_NODE="
                          f"{part['gpus'] or 1}{'' if part['gpus'] else ' config.MACHINE.DEVICE=cpu'} and raise NUM_NODES")


def check_before_launch(config) -> List[dict]:
    """Everything the launcher checks after validation and before spawning any worker or
    submitting a job; returns what :func:`stamp_validated` records."""
    check_amp(config)
    check_devices(config)
    check_slurm(config)
    validated = check_data_paths(config)
    check_monitor_paths(config)
    return validated


@contextmanager
def stamp_validated(folder: str, validated: List[dict]):
    """Within: the stamp of ``validated`` is in ``folder`` (the checkpoint folder) and the ranks
    started here find it through STAMP_ENV; the variable is restored afterwards (the launcher
    also runs in-process, in tests). Nothing validated (host data sources): no stamp."""
    before = os.environ.get(STAMP_ENV)
    if validated:
        os.environ[STAMP_ENV] = write_stamp(folder, validated)
    else:  # a value left in the user's shell must not stand for this launch's checks
        os.environ.pop(STAMP_ENV, None)
    try:
        yield os.environ.get(STAMP_ENV)
    finally:
        if before is None:
            os.environ.pop(STAMP_ENV, None)
        else:
            os.environ[STAMP_ENV] = before
