"""The launcher behind ``tools/run_distributed_engines.py``: VISSL's own command line, with our
config search path, config validation, and our hook generator (VISSL's default hooks plus every
registered hook factory) on one machine, many GPUs or SLURM.

    python tools/run_distributed_engines.py config=pretrain/frame_temporal \
        config.DATA.TRAIN.DATA_PATHS=[/data/frames/manifest.json]

Host configs (config=benchmark/linear_image_classification/..., config=pretrain/moco/...)
resolve as with VISSL's launcher.

The console is quiet (vissl_ext.utils.console): a header, progress lines and the checkpoint; VISSL's
full output is in ``log.txt`` of the checkpoint folder, and ``VISSL_EXT_VERBOSE=1`` shows it.
"""
import glob
import os
import sys
from typing import Any, List

import vissl_ext  # noqa: F401  (fixes + registration as vissl is imported below, also in spawned workers)
from vissl_ext.config import ConfigError, compose_config
from vissl_ext.utils.console import VERBOSE_ENV, verbose
from vissl_ext.engines.quiet_console import install as _install_quiet_console
from vissl_ext.engines.preflight import check_before_launch, stamp_validated
from vissl_ext.registry import hook_generator
from vissl_ext.utils.atomic_io import write_json_atomic
from vissl_ext.utils.checkpoints import RUN_INFO

# at import: spawned workers re-import the launcher's main module, SLURM jobs unpickle from here
_install_quiet_console()


def _slurm_job_class():
    from vissl.utils import distributed_launcher as dl

    class VisslExtSlurmJob(dl._ResumableSlurmJob):
        """VISSL's resumable SLURM job, launching with our hook generator. Pickled by
        reference, so unpickling on the node imports vissl_ext (fixes + registration)."""

        def __call__(self):
            import submitit

            env = submitit.JobEnvironment()
            self.config.DISTRIBUTED.INIT_METHOD = "tcp"
            self.config.DISTRIBUTED.RUN_ID = f"{env.hostnames[0]}:{self.config.SLURM.PORT_ID}"
            dl.launch_distributed(cfg=self.config, node_id=env.global_rank,
                                  engine_name=self.engine_name, hook_generator=hook_generator)

        def checkpoint(self):
            import submitit

            return submitit.helpers.DelayedSubmission(VisslExtSlurmJob(self.engine_name, self.config))

    VisslExtSlurmJob.__qualname__ = "VisslExtSlurmJob"
    return VisslExtSlurmJob


VisslExtSlurmJob = None  # created lazily (needs vissl imported); module attribute for pickling


def launch(args, config):
    from vissl.utils import distributed_launcher as dl

    if config.SLURM.USE_SLURM:
        from vissl.utils.slurm import is_submitit_available

        assert is_submitit_available(), "Please 'pip install submitit' to schedule jobs on SLURM"
        global VisslExtSlurmJob
        VisslExtSlurmJob = VisslExtSlurmJob or _slurm_job_class()
        # reuse VISSL's submission code (executor parameters from config.SLURM), with our job
        original = dl._ResumableSlurmJob
        dl._ResumableSlurmJob = VisslExtSlurmJob
        try:
            return dl.launch_distributed_on_slurm(engine_name=args.engine_name, cfg=config)
        finally:
            dl._ResumableSlurmJob = original
    return dl.launch_distributed(cfg=config, node_id=args.node_id, engine_name=args.engine_name,
                                 hook_generator=hook_generator)


def newest_checkpoint(folder: str):
    """The checkpoint a run left: the final one if any, else the latest written."""
    files = glob.glob(os.path.join(folder, "model_*.torch"))
    finals = [f for f in files if os.path.basename(f).startswith("model_final")]
    return max(finals or files, key=os.path.getmtime, default=None)


def main(argv: List[Any] = None) -> int:
    """``argv``: VISSL's hydra overrides (``config=...``, ``config.X=...``); default sys.argv[1:].
    Exit code 2 and one ``error:`` line for a user error (config, machine, data paths), before
    any worker starts."""
    overrides = list(sys.argv[1:] if argv is None else argv)
    if verbose():
        print(f"####### overrides: {overrides}")
    try:
        args, config = compose_config(overrides)
        validated = check_before_launch(config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from vissl.utils.checkpoint import get_checkpoint_folder

    folder = get_checkpoint_folder(config)
    name = next((o.split("=", 1)[1] for o in overrides if str(o).startswith("config=")), "?")
    hint = "" if verbose() else f"; {VERBOSE_ENV}=1 shows it here"
    print(f"vissl_ext {args.engine_name}: config={name}  (full VISSL log: {folder}/log.txt{hint})", flush=True)
    if args.engine_name == "train":  # the config's name, which VISSL's checkpoints do not keep (export metadata)
        write_json_atomic(os.path.join(folder, RUN_INFO), {"config": name})
    with stamp_validated(folder, validated):  # the ranks skip the file checks just done
        launch(args, config)
    if not config.SLURM.USE_SLURM:
        ckpt = newest_checkpoint(folder) if args.engine_name == "train" else None
        print(f"done: {'checkpoint ' + ckpt if ckpt else 'outputs in ' + folder}", flush=True)
    return 0
