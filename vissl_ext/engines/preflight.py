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
- :func:`stamp_validated`: what the checks validated in full goes into a stamp in the checkpoint
  folder (vissl_ext.utils.validation_stamp), and the ranks started by this launcher skip the
  file-existence checks on the same unchanged manifests: on a Kinetics-scale manifest of frame
  folders those checks were about 30% of each rank's read, warm cache (benchmarks/bench_startup.py).

These checks stay out of :func:`vissl_ext.config.validate_config`: tests and tools compose
configs for other machines, and without their data.
"""
import os
from contextlib import contextmanager
from typing import List

from vissl_ext.config import ConfigError
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


def check_before_launch(config) -> List[dict]:
    """Everything the launcher checks after validation and before spawning any worker; returns
    what :func:`stamp_validated` records."""
    check_amp(config)
    check_devices(config)
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
