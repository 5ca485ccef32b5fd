"""Test-only fault injection for subprocesses (the package carries no test hooks).

A test puts this folder first on the PYTHONPATH of a subprocess it starts (see
``fault_injection_env`` in tests/vissl_ext_testing.py); Python imports ``sitecustomize`` at
start-up, in that process and in every Python process it starts (spawned DDP workers, submitit's
``python -m submitit.core._submit`` tasks), since they inherit the environment. Faults, chosen by
environment variables that only this file reads:

- ``VISSL_EXT_TEST_SIGKILL_AT_SAVE=N``: SIGKILL the process group once 1 MiB of the N-th
  checkpoint write of this process (``vissl_ext.utils.checkpoints.save_torch_atomic``) reached the disk
  (a job preempted while saving);
- ``VISSL_EXT_TEST_KILL_SHARD=K``: SIGKILL the array task of shard K
  (``vissl_ext.cli.shard_jobs.run_shard``) after its work, when it is about to write its marker;
- ``VISSL_EXT_TEST_HOLD_SHARD=K:PATH``: the array task of shard K waits until the file PATH exists
  (at most 120 s) before its work (a job still pending or running when the command is rerun);
- ``VISSL_EXT_TEST_PREEMPT_AT_SAVE=N:MARKER``: once per test (MARKER is created), the N-th checkpoint
  write of a process leaves the first half of the file at its final path (what a kill mid-write
  leaves where writes are not atomic) and sends SIGUSR2, SLURM's preemption signal as submitit
  handles it, to the process's parent (a node's task of a submitit job), then waits to be stopped
  (``MARKER.not_stopped`` if that took 120 s);
- ``VISSL_EXT_TEST_RECORD_WRITES=PATH``: not a fault, a record: every checkpoint write and every
  log file VISSL's logging opens appends ``<rank> <pid> checkpoint|log <path>`` to PATH.

The real functions run; the patch is applied when the module is first imported (an import hook:
at start-up ``vissl_ext`` is not importable yet, sys.path gets the checkout later).
"""
import importlib.abc
import importlib.machinery
import importlib.util
import os
import signal
import sys

SIGKILL_AT_SAVE = "VISSL_EXT_TEST_SIGKILL_AT_SAVE"
KILL_SHARD = "VISSL_EXT_TEST_KILL_SHARD"
HOLD_SHARD = "VISSL_EXT_TEST_HOLD_SHARD"
PREEMPT_AT_SAVE = "VISSL_EXT_TEST_PREEMPT_AT_SAVE"
RECORD_WRITES = "VISSL_EXT_TEST_RECORD_WRITES"


class _KillHalfway:
    """File wrapper that SIGKILLs the process group once ``limit`` bytes went to disk."""

    def __init__(self, f, limit: int):
        self._f, self._limit, self._written = f, limit, 0

    def write(self, b):
        n = self._f.write(b)
        self._written += len(b)
        if self._written >= self._limit:
            self._f.flush()
            os.fsync(self._f.fileno())
            os.killpg(os.getpgid(0), signal.SIGKILL)
        return n

    def __getattr__(self, name):
        return getattr(self._f, name)


def _patch_checkpoints(mod, kill_at: int):
    real_save, saves = mod.save_torch_atomic, [0]

    def save_torch_atomic(obj, path):
        saves[0] += 1
        if saves[0] != kill_at:
            return real_save(obj, path)
        import torch

        real_torch_save = torch.save
        # the real save_torch_atomic (temp file beside the target, then rename), its bytes cut short
        torch.save = lambda o, f, *a, **k: real_torch_save(o, _KillHalfway(f, limit=1 << 20), *a, **k)
        try:
            return real_save(obj, path)
        finally:
            torch.save = real_torch_save

    mod.save_torch_atomic = save_torch_atomic


def _preempt_at_save(mod, at: int, marker: str):
    real_save, saves = mod.save_torch_atomic, [0]

    def save_torch_atomic(obj, path):
        saves[0] += 1
        if saves[0] != at or os.path.exists(marker):
            return real_save(obj, path)
        import io
        import time

        import torch

        open(marker, "w").close()
        buf = io.BytesIO()
        torch.save(obj, buf)
        with open(path, "wb") as f:  # in place, cut short
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2])
        os.kill(os.getppid(), signal.SIGUSR2)
        time.sleep(120)  # the job stops this process (VisslExtSlurmJob.checkpoint)
        open(marker + ".not_stopped", "w").close()
        os._exit(1)

    mod.save_torch_atomic = save_torch_atomic


def _rank() -> str:
    torch = sys.modules.get("torch")
    if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
        return str(torch.distributed.get_rank())
    return os.environ.get("RANK", "-")


def _record(record: str, kind: str, path: str):
    with open(record, "a") as f:
        f.write(f"{_rank()} {os.getpid()} {kind} {path}\n")


def _record_checkpoints(mod, record: str):
    real_save = mod.save_torch_atomic

    def save_torch_atomic(obj, path):
        _record(record, "checkpoint", path)
        return real_save(obj, path)

    mod.save_torch_atomic = save_torch_atomic


def _record_logs(mod, record: str):
    real_stream = mod._cached_log_stream

    def _cached_log_stream(filename):
        _record(record, "log", filename)
        return real_stream(filename)

    mod._cached_log_stream = _cached_log_stream


def _patch_shard_jobs(mod, kill_shard=None, hold=None):
    real_run_shard = mod.run_shard

    def run_shard(module, argv, shard, num_shards, out):
        if hold is not None and shard == hold[0]:
            import time

            deadline = time.time() + 120
            while not os.path.exists(hold[1]) and time.time() < deadline:
                time.sleep(0.1)
        if shard == kill_shard:
            marker, real_write = mod.marker_path(out, shard, num_shards, module), mod.write_json_atomic

            def write_json_atomic(path, *a, **k):
                if path == marker:  # the work is done, the marker not written yet
                    os.kill(os.getpid(), signal.SIGKILL)
                return real_write(path, *a, **k)

            mod.write_json_atomic = write_json_atomic
        return real_run_shard(module, argv, shard, num_shards, out)

    mod.run_shard = run_shard


class _PatchAfterImport(importlib.abc.MetaPathFinder):
    """Finds modules as the other finders do, and patches the named ones once they ran."""

    def __init__(self, patches):
        self.patches = patches

    def find_spec(self, name, path, target=None):
        if name not in self.patches:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                spec.loader = _PatchingLoader(spec.loader, self.patches[name])
                return spec
        return None


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, inner, patch):
        self._inner, self._patch = inner, patch

    def create_module(self, spec):
        return self._inner.create_module(spec)

    def exec_module(self, module):
        self._inner.exec_module(module)
        self._patch(module)

    def __getattr__(self, name):  # get_source, get_filename, ... (tracebacks, inspect)
        return getattr(self._inner, name)


def _install():
    patches, on_checkpoints = {}, []
    if os.environ.get(SIGKILL_AT_SAVE):
        n = int(os.environ[SIGKILL_AT_SAVE])
        on_checkpoints.append(lambda m: _patch_checkpoints(m, n))
    if os.environ.get(PREEMPT_AT_SAVE):
        n, marker = os.environ[PREEMPT_AT_SAVE].split(":", 1)
        on_checkpoints.append(lambda m: _preempt_at_save(m, int(n), marker))
    if os.environ.get(RECORD_WRITES):
        record = os.environ[RECORD_WRITES]
        on_checkpoints.append(lambda m: _record_checkpoints(m, record))  # last: records the faulty writes too
        patches["vissl.utils.logger"] = lambda m: _record_logs(m, record)
    if on_checkpoints:
        patches["vissl_ext.utils.checkpoints"] = lambda m: [patch(m) for patch in on_checkpoints]
    if os.environ.get(KILL_SHARD) or os.environ.get(HOLD_SHARD):
        k = int(os.environ[KILL_SHARD]) if os.environ.get(KILL_SHARD) else None
        hold = os.environ[HOLD_SHARD].split(":", 1) if os.environ.get(HOLD_SHARD) else None
        hold = (int(hold[0]), hold[1]) if hold else None
        patches["vissl_ext.cli.shard_jobs"] = lambda m: _patch_shard_jobs(m, k, hold)
    if patches:
        sys.meta_path.insert(0, _PatchAfterImport(patches))


def _chain_shadowed_sitecustomize():
    """Run the sitecustomize this one shadows, if the installation has one."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))


_install()
_chain_shadowed_sitecustomize()
