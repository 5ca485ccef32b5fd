"""Diagnostics for a training step: host reads of tensor values (each one a GPU->host sync when
the tensor lives on a GPU) and the payload handed to torch.distributed collectives. Used by
benchmarks/bench_comm_sync.py, scripts/device_sync_check.py and the tests; they patch torch
only inside their ``with`` block.

    with count_host_syncs() as syncs, count_collective_bytes() as comm:
        train_step()
    syncs.by_site()   # {"vissl_ext/losses/temporal_contrastive_loss.py:123 item": 1, ...}
    comm.total()      # bytes this rank passed to collectives
"""
import collections
import contextlib
import os
import traceback

import torch
import torch.distributed as dist

# the Tensor methods that read a value on the host: on a CUDA tensor each one waits for the GPU
SYNC_METHODS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__")
# the collectives whose first tensor (list) argument is what this rank sends
COLLECTIVES = ("all_gather", "all_gather_into_tensor", "all_reduce", "broadcast", "reduce", "reduce_scatter",
               "reduce_scatter_tensor", "all_to_all", "all_to_all_single", "gather", "scatter", "send", "isend")

_TORCH_DIR = os.path.dirname(torch.__file__)
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # vissl_ext/


def _site(skip_dirs) -> str:
    """file:line of the innermost caller outside torch (and outside this module), followed by
    "<- file:line" of the innermost vissl_ext frame when that caller is another library."""
    here = os.path.abspath(__file__)
    site = None
    for frame in reversed(traceback.extract_stack()[:-2]):
        f = os.path.abspath(frame.filename)
        if f == here or f.startswith(_TORCH_DIR + os.sep) or any(f.startswith(d) for d in skip_dirs):
            continue
        where = f"{_short(f)}:{frame.lineno}"
        if site is None:
            site = where
            if f.startswith(_PACKAGE_DIR + os.sep):
                return site
        elif f.startswith(_PACKAGE_DIR + os.sep):
            return f"{site} <- {where}"
    return site or "?"


def _short(path: str) -> str:
    if path.startswith(_PACKAGE_DIR + os.sep):
        return "vissl_ext/" + os.path.relpath(path, _PACKAGE_DIR)
    for marker in ("/site-packages/", "/benchmarks/", "/scripts/", "/tests/"):
        if marker in path:
            return path[path.index(marker) + 1:].replace("site-packages/", "")
    return os.path.basename(path)


class _Tally:
    def __init__(self):
        self.calls = []  # (site, what, amount)

    def by_site(self):
        out = collections.Counter()
        for site, what, amount in self.calls:
            out[f"{site} {what}"] += amount
        return dict(out)

    def count(self, site_contains: str = "") -> int:
        return sum(1 for site, _, _ in self.calls if site_contains in site)

    def total(self, site_contains: str = "") -> int:
        return sum(a for site, _, a in self.calls if site_contains in site)

    def reset(self):
        self.calls.clear()


@contextlib.contextmanager
def count_host_syncs(skip_dirs=()):
    """Count calls of SYNC_METHODS on tensors, each with its call site (the first frame outside
    torch and skip_dirs). On CPU nothing waits, but the same calls on CUDA tensors would."""
    tally = _Tally()
    saved = {name: getattr(torch.Tensor, name) for name in SYNC_METHODS}

    def wrap(name, fn):
        def probe(self, *args, **kwargs):
            tally.calls.append((_site(skip_dirs), name, 1))
            return fn(self, *args, **kwargs)
        return probe

    try:
        for name, fn in saved.items():
            setattr(torch.Tensor, name, wrap(name, fn))
        yield tally
    finally:
        for name, fn in saved.items():
            setattr(torch.Tensor, name, fn)


def _nbytes(x) -> int:
    if isinstance(x, torch.Tensor):
        return x.numel() * x.element_size()
    if isinstance(x, (list, tuple)):
        return sum(_nbytes(t) for t in x)
    return 0


@contextlib.contextmanager
def count_collective_bytes(skip_dirs=()):
    """Bytes of the tensors this rank hands to each torch.distributed collective: the input of an
    all_gather (each rank's contribution), the tensor of an all_reduce, a broadcast's tensor on its
    source rank only. On a ring each all_gather payload byte then travels world_size - 1 hops."""
    tally = _Tally()
    saved = {name: getattr(dist, name) for name in COLLECTIVES if hasattr(dist, name)}

    def wrap(name, fn):
        def probe(*args, **kwargs):
            if name in ("all_gather", "all_gather_into_tensor", "gather", "reduce_scatter", "reduce_scatter_tensor",
                        "all_to_all", "all_to_all_single"):
                sent = args[1] if len(args) > 1 else kwargs.get("tensor", kwargs.get("input_tensor"))
            else:
                sent = args[0] if args else kwargs.get("tensor")
            if name == "broadcast":
                src = args[1] if len(args) > 1 else kwargs.get("src")
                sent = sent if dist.get_rank() == src else None
            tally.calls.append((_site(skip_dirs), name, _nbytes(sent)))
            return fn(*args, **kwargs)
        return probe

    try:
        for name, fn in saved.items():
            setattr(dist, name, wrap(name, fn))
        yield tally
    finally:
        for name, fn in saved.items():
            setattr(dist, name, fn)
