"""The launcher behind ``tools/run_distributed_engines.py``: VISSL's own command line, with our
config search path, config validation, and our hook generator (VISSL's default hooks plus every
registered hook factory) on one machine, many GPUs or SLURM.

    python tools/run_distributed_engines.py config=pretrain/frame_temporal \
        config.DATA.TRAIN.DATA_PATHS=[/data/frames/manifest.json]

Host configs (config=benchmark/linear_image_classification/..., config=pretrain/moco/...)
resolve as with VISSL's launcher.
"""
import sys
from typing import Any, List

import vissl_ext  # noqa: F401  (compat fixes + registration, also in spawned workers)
from vissl_ext.config import ConfigError, compose_config
from vissl_ext.preflight import check_before_launch
from vissl_ext.registry import hook_generator


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


def main(argv: List[Any] = None) -> int:
    """``argv``: VISSL's hydra overrides (``config=...``, ``config.X=...``); default sys.argv[1:].
    Exit code 2 and one ``error:`` line for a user error (config, machine, data paths), before
    any worker starts."""
    overrides = list(sys.argv[1:] if argv is None else argv)
    print(f"####### overrides: {overrides}")
    try:
        args, config = compose_config(overrides)
        check_before_launch(config)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    launch(args, config)
    return 0
