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
from vissl.utils import distributed_launcher as dl

# at import: spawned workers re-import the launcher's main module, SLURM jobs unpickle from here
_install_quiet_console()


class VisslExtSlurmJob(dl._ResumableSlurmJob):
    """VISSL's resumable SLURM job, launching with our hook generator: one task per node, node
    id = the task's global rank. Pickled by reference, so unpickling on a node imports this module
    (fixes, registration, the quiet console). On preemption or at the time limit submitit calls
    :meth:`checkpoint` in rank 0 and requeues what it returns; the requeued job resumes from the
    last valid checkpoint of the folder (VISSL's AUTO_RESUME through vissl_ext.utils.checkpoints)."""

    def __call__(self):
        import submitit

        env = submitit.JobEnvironment()
        self.config.DISTRIBUTED.INIT_METHOD = "tcp"
        self.config.DISTRIBUTED.RUN_ID = f"{env.hostnames[0]}:{self.config.SLURM.PORT_ID}"
        # the node's workers are spawned by VISSL (torch.multiprocessing.spawn): with submitit's
        # module as their __main__ they would unpickle VISSL before vissl_ext (no fixes, nothing
        # registered); our worker, pickled by reference to this module, imports it first
        host_worker, dl._distributed_worker = dl._distributed_worker, _node_worker
        try:
            dl.launch_distributed(cfg=self.config, node_id=env.global_rank, engine_name=self.engine_name,
                                  hook_generator=hook_generator)
        finally:
            dl._distributed_worker = host_worker

    def checkpoint(self):
        """This job, to be requeued. Also stops this node's workers: SLURM ends every process of a
        requeued job, but where the signal reaches the task alone (submitit's local executor sends
        it to its tasks only) VISSL's spawned workers would train on while the task waits for them."""
        import multiprocessing

        import submitit

        for worker in multiprocessing.active_children():
            worker.terminate()
        return submitit.helpers.DelayedSubmission(VisslExtSlurmJob(self.engine_name, self.config))


def _node_worker(*args, **kwargs):
    """VISSL's worker, in a process that imported this module (see VisslExtSlurmJob.__call__)."""
    return _HOST_WORKER(*args, **kwargs)


_HOST_WORKER = dl._distributed_worker


def submit_on_slurm(config, engine_name: str, cluster: str = "slurm"):
    """Submit ``VisslExtSlurmJob`` with the executor parameters VISSL's own
    ``launch_distributed_on_slurm`` derives from config.SLURM and config.DISTRIBUTED; prints one
    line (job id, log folder, how to watch it) and returns the submitit job. ``cluster="local"``:
    submitit's LocalExecutor on this machine, one task per node (each task is a node through its
    global rank), which is how the tests run the multi-node route."""
    import submitit

    folder = config.SLURM.LOG_FOLDER
    os.makedirs(folder, exist_ok=True)
    nodes, procs = int(config.DISTRIBUTED.NUM_NODES), int(config.DISTRIBUTED.NUM_PROC_PER_NODE)
    gpus = procs if config.MACHINE.DEVICE == "gpu" else 0
    timeout_min = config.SLURM.TIME_HOURS * 60 + config.SLURM.TIME_MINUTES
    if cluster == "local":
        executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(timeout_min=timeout_min, tasks_per_node=nodes, gpus_per_node=gpus * nodes)
    else:
        executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        executor.update_parameters(
            name=config.SLURM.NAME, slurm_comment=config.SLURM.COMMENT, slurm_partition=config.SLURM.PARTITION,
            slurm_constraint=config.SLURM.CONSTRAINT, timeout_min=timeout_min, nodes=nodes,
            cpus_per_task=config.SLURM.NUM_CPU_PER_PROC * procs, tasks_per_node=1, gpus_per_node=gpus,
            mem_gb=config.SLURM.MEM_GB, slurm_additional_parameters=dict(config.SLURM.ADDITIONAL_PARAMETERS or {}))
    job = executor.submit(VisslExtSlurmJob(engine_name=engine_name, config=config))
    watch = f"squeue -j {job.job_id}; " if cluster == "slurm" else ""
    print(f"submitted: job {job.job_id} ({nodes} node{'s' if nodes > 1 else ''} x {procs} process"
          f"{'es' if procs > 1 else ''}), logs in {folder}; watch: {watch}tail -f {job.paths.stdout}", flush=True)
    return job


def launch(args, config):
    if config.SLURM.USE_SLURM:
        return submit_on_slurm(config, args.engine_name)
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
