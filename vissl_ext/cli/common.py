"""What every command line of the package shares: sharding, logging, and the ``main`` wrapper.

The convention (README, Layout): a CLI module ``vissl_ext/<area>/<name>_cli.py`` holds
``parse_args(argv)`` (its argparse parser; the module docstring is the ``--help`` text),
``run(args) -> dict`` (the work; returns a summary, raises on user errors) and
``main(argv=None) -> int`` (an exit code, through :func:`run_main`). ``tools/<name>.py`` is a
shim calling ``main``; tests call ``main([...])``, or ``run(parse_args([...]))`` for the summary.
"""
import argparse
import errno
import json
import logging
import os
import sys
from typing import Callable, Optional, Sequence, Tuple, Type

# Exceptions that mean "the user gave something wrong" (a file, a flag value): one error: line,
# exit code 2. Anything else is a bug and keeps its traceback.
USER_ERRORS: Tuple[Type[BaseException], ...] = (ValueError, FileNotFoundError, NotADirectoryError)
# OSErrors that are the machine's or the user's, not a bug: a full disk, a read-only or
# forbidden folder. One error: line as well.
DISK_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
ACCESS_ERRNOS = {errno.EACCES, errno.EPERM}


class OutputError(ValueError):
    """An output folder that cannot be written; the message names it and why."""


def output_dir(path: str) -> str:
    """Create the output folder and write (and remove) a probe file in it, so that a read-only,
    forbidden or full folder fails before any work rather than as one failure per input."""
    import tempfile

    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write_test_")
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
            os.remove(probe)
    except OSError as e:
        raise OutputError(f"output folder {path} cannot be written: {e.strerror or e}") from None
    return path


def is_output_error(e: OSError, out: str) -> bool:
    """Whether an OSError met while processing one input is the output's (full disk, read-only or
    forbidden output folder): the run must stop, not list the input as unreadable."""
    if e.errno in DISK_ERRNOS:
        return True
    name = getattr(e, "filename", None)
    inside = name is not None and os.path.abspath(str(name)).startswith(os.path.abspath(out) + os.sep)
    return inside and e.errno in ACCESS_ERRNOS | {errno.ENOTDIR, errno.ENOENT}


def parser(doc: str, **kw) -> argparse.ArgumentParser:
    """An ArgumentParser whose --help shows a module docstring with its usage examples as written."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter, **kw)


def add_video_flags(p: argparse.ArgumentParser, shard: bool = False, workers: bool = False):
    """The flags of every CLI that reads videos: --decoder, optionally --shard and --workers, --no-progress."""
    p.add_argument("--decoder", choices=["pyav", "opencv"], default="pyav",
                   help="how videos are decoded (for manifests that read videos directly; default pyav)")
    if shard:
        p.add_argument("--shard", default=None,
                       help="i/n: every n-th video starting at i (default: torch.distributed's RANK/WORLD_SIZE, else all)")
    if workers:
        p.add_argument("--workers", type=int, default=1, help="parallel processes on this machine, one video each (default 1)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def setup_logging():
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")


def _end_with_parent(parent: int):
    # Linux: the kernel sends SIGKILL to this worker when its parent dies (kill -9 of the tool
    # must leave no pool workers behind); if the parent is already gone, leave at once.
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        os._exit(1)


def process_pool(workers: int):
    """A ProcessPoolExecutor whose workers end with the process that made them."""
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, initializer=_end_with_parent, initargs=(os.getpid(),))


def map_jobs(fn: Callable, jobs: list, workers: int, what: str, progress: bool = True, **bar) -> list:
    """``fn(job) -> (id, error or None)`` for every job, on a process pool when ``workers`` > 1,
    with a progress bar (``bar``: tqdm's desc/unit); returns the errors, each logged as ``what``."""
    from contextlib import nullcontext

    from tqdm import tqdm

    failures = []
    pbar = tqdm(total=len(jobs), disable=not progress, **bar)
    with process_pool(workers) if workers > 1 and len(jobs) > 1 else nullcontext() as pool:
        for _, err in (pool.map(fn, jobs) if pool else map(fn, jobs)):
            pbar.update(1)
            if err:
                failures.append(err)
                logging.warning(f"{what}: {err}")
    pbar.close()
    return failures


def parse_shard(shard: Optional[str]) -> Tuple[int, int]:
    """'i/n', or torch.distributed's RANK/WORLD_SIZE from the environment, or 0/1."""
    if shard:
        try:
            i, n = (int(x) for x in shard.split("/"))
        except ValueError:
            raise ValueError(f"--shard must look like i/n (e.g. 0/4), got {shard!r}")
        if n < 1 or not 0 <= i < n:
            raise ValueError(f"--shard {shard}: need 0 <= i < n")
        return i, n
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    return 0, 1


def shard_of(items: list, shard: int, num_shards: int) -> list:
    """Every ``num_shards``-th item starting at ``shard``."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is outside 0..{num_shards - 1}")
    return items[shard::num_shards]


def shard_range(num_items: int, shard: int, num_shards: int) -> range:
    """Shard ``shard`` of ``num_shards`` as a contiguous block of ``range(num_items)`` (sizes
    differ by at most one): for outputs kept in input order, the shards concatenate."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is outside 0..{num_shards - 1}")
    return range(shard * num_items // num_shards, (shard + 1) * num_items // num_shards)


def run_main(parse_args: Callable, run: Callable, argv: Optional[Sequence[str]] = None,
             user_errors: Tuple[Type[BaseException], ...] = USER_ERRORS,
             shown: Optional[Callable] = lambda s: s) -> int:
    """parse -> logging -> run -> ``shown(summary)`` as JSON on stdout (``shown=None``: nothing,
    for a CLI whose ``run`` prints a report itself). Exit code 0, or 1 when the summary says
    ``ok: False``, or 2 with one ``error:`` line for a user error."""
    args = parse_args(argv)
    setup_logging()
    try:
        summary = run(args)
    except user_errors as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in DISK_ERRNOS | ACCESS_ERRNOS:
            raise
        print(f"error: {e.filename or 'writing the output'}: {e.strerror}"
              f"{' (disk full)' if e.errno == errno.ENOSPC else ''}", file=sys.stderr)
        return 2
    if shown is not None and summary is not None:
        print(json.dumps(shown(summary), indent=1, default=str))
    return 0 if not isinstance(summary, dict) or summary.get("ok", True) else 1
