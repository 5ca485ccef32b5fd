"""The online monitor: during pretraining, with the current trunk (the query encoder, in eval
mode, no gradients), evaluations on small sets the user names, every N epochs and/or N
iterations and at the end of training.

    config.MONITOR.ENABLED=true config.MONITOR.EVERY_N_EPOCHS=1
    config.MONITOR.KNN.TRAIN=/data/knn/train config.MONITOR.KNN.VAL=/data/knn/val   # weighted kNN top-1
    config.MONITOR.RIS.MANIFEST=/data/ris/aloi_viewpoint.json                       # RIS Top-10/25

Each evaluation gives one console line, TensorBoard scalars ``Monitor/<metric>`` (with
``config.HOOKS.TENSORBOARD_SETUP.USE_TENSORBOARD=true``) and lines of
``<checkpoint folder>/monitor.jsonl`` ({epoch, iteration, metric, value, seconds}).

- Several processes: every rank takes rank 0's BN statistics for the evaluation (DDP leaves each
  rank with its own after a step), global batch b of a set is encoded on rank b % world size, the
  features are summed into rank 0 (each row is non-zero on one rank only, so the sum is exact) and rank 0
  scores. Every image is encoded in the same batch whatever the world size.
- Resume: evaluations are keyed by iteration in monitor.jsonl. A resumed run evaluates at its
  start when the point it resumes from was due and is not recorded (killed between the
  checkpoint and the evaluation: the weights are those of that point), and never evaluates a
  recorded iteration again.
- Metrics are registered with :func:`vissl_ext.registry.register_monitor_metric` (a
  :class:`MonitorMetric` subclass, configured by ``config.MONITOR.<NAME>``); ours: KNN
  (vissl_ext/downstream/knn_monitor.py) and RIS (vissl_ext/invariance/ris_monitor.py).
"""
import logging
import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, List, Optional, Sequence

import torch

from vissl_ext.config import ConfigError, need_int, register_config_validator, with_defaults
from vissl_ext.hooks.base import EventHook
from vissl_ext.hooks.tensorboard_hook import tensorboard_writer
from vissl_ext.registry import monitor_metrics, register_hook_factory
from vissl_ext.utils.atomic_io import append_jsonl, read_jsonl
from vissl_ext.utils.console import say

LOG_NAME = "monitor.jsonl"
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

MONITOR_DEFAULTS: Dict[str, Any] = {
    "ENABLED": False,
    "EVERY_N_EPOCHS": 1,  # 0: no per-epoch evaluation
    "EVERY_N_ITERATIONS": 0,  # > 0: also every N iterations (short runs)
    "IMAGE_SIZE": 0,  # 0: each set's own (RIS: the manifest's image_size; kNN: 224)
    "BATCHSIZE": 64,  # per forward pass, on each rank
    "NUM_WORKERS": 0,  # data-loader workers decoding the sets (0: in the training process)
    "CACHE_MB": 1024,  # decoded views kept between evaluations, per rank (0: decode every time)
    "LAYER": "res5avg",  # trunk feature (VISSL's name): res5avg is the pooled ResNet output
}


class MonitorMetric:
    """A monitor metric: the sets it encodes and how it scores their features. Subclass, set
    ``defaults`` (its config.MONITOR.<NAME> keys) and register with
    ``@vissl_ext.registry.register_monitor_metric("NAME")``."""

    defaults: Dict[str, Any] = {}
    hint = ""  # which keys switch it on, for the message of an empty monitor

    def enabled(self, section: dict) -> bool:
        """Whether the user named its sets."""
        return True

    def validate(self, section: dict, where: str) -> None:
        """Raise ConfigError for a wrong value (at compose time, no file access)."""

    def check_paths(self, section: dict, where: str) -> None:
        """Raise ConfigError for a missing or unreadable set (launcher preflight)."""

    def image_sets(self, section: dict, image_size: int) -> Dict[str, "ImageSet"]:
        """The sets to encode, by name; built once per run, on every rank."""
        raise NotImplementedError

    def score(self, section: dict, feats: Dict[str, torch.Tensor], sets: Dict[str, "ImageSet"]) -> Dict[str, float]:
        """{metric name: value} from the features [N, D] of each set (rank 0 only)."""
        raise NotImplementedError


class ImageSet(torch.utils.data.Dataset):
    """``transform(load(item))`` for each item; ``info`` carries what scoring needs (labels...).
    A transform with ``view`` and ``finish`` (an :class:`EvalView`) lets the monitor keep the
    compact ``view`` of each image between evaluations and ``finish`` whole batches."""

    def __init__(self, items: Sequence, load: Callable, transform: Callable, **info):
        self.items, self.load, self.transform, self.info = list(items), load, transform, info

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.transform(self.load(self.items[i]))

    def _split(self) -> bool:
        return hasattr(self.transform, "view") and hasattr(self.transform, "finish")

    def stored(self, i):
        """What the monitor decodes once and keeps: the transform's ``view``, else its output."""
        return self.transform.view(self.load(self.items[i])) if self._split() else self[i]

    def finish(self, batch: torch.Tensor) -> torch.Tensor:
        """The trunk's input from a batch of :meth:`stored` items."""
        return self.transform.finish(batch) if self._split() else batch


class _Stored(torch.utils.data.Dataset):
    def __init__(self, data: ImageSet):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data.stored(i)


def load_rgb(path: str):
    from PIL import Image

    with open(path, "rb") as f:
        return Image.open(f).convert("RGB")


class EvalView:
    """An evaluation view of a PIL image: ``ops`` (resize, crop), the uint8 tensor (``view``), then
    / 255 and ImageNet normalisation (``finish``, on a batch too): the numbers of torchvision's
    ToTensor + Normalize, with a quarter of float32's memory for the views the monitor keeps."""

    def __init__(self, *ops):
        import torchvision.transforms as T

        self.view = T.Compose([*ops, T.PILToTensor()])
        self.normalize = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)

    def finish(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalize(x.float().div(255))

    def __call__(self, img) -> torch.Tensor:
        return self.finish(self.view(img))


def center_crop_transform(size: int) -> EvalView:
    """The usual evaluation view: short side to size * 256/224, centre crop, ImageNet normalisation."""
    import torchvision.transforms as T

    return EvalView(T.Resize(round(size * 256 / 224)), T.CenterCrop(size))


def square_resize_transform(size: int) -> EvalView:
    """Resize to size x size (the RIS protocol's view), ImageNet normalisation."""
    import torchvision.transforms as T

    return EvalView(T.Resize((size, size)))


# ------------------------------------------------------------------------------ config

def monitor_cfg(config) -> Dict[str, Any]:
    """config.MONITOR merged over its defaults, each registered metric's section over its own."""
    metrics = monitor_metrics()
    m = with_defaults(config.get("MONITOR", {}), dict(MONITOR_DEFAULTS, **{n: {} for n in metrics}), "config.MONITOR")
    for name, metric in metrics.items():
        m[name] = with_defaults(m[name], metric.defaults, f"config.MONITOR.{name}")
    return m


def active_metrics(m: Dict[str, Any]) -> List[tuple]:
    return [(name, metric) for name, metric in monitor_metrics().items() if metric.enabled(m[name])]


@register_config_validator
def _validate_monitor(config):
    if "MONITOR" not in config:
        return
    m = monitor_cfg(config)
    if not isinstance(m["ENABLED"], bool):
        raise ConfigError(f"config.MONITOR.ENABLED must be true or false, got {m['ENABLED']!r}")
    for key, minimum in (("EVERY_N_EPOCHS", 0), ("EVERY_N_ITERATIONS", 0), ("IMAGE_SIZE", 0), ("BATCHSIZE", 1),
                         ("NUM_WORKERS", 0), ("CACHE_MB", 0)):
        need_int(m[key], f"config.MONITOR.{key}", minimum)
    if not isinstance(m["LAYER"], str) or not m["LAYER"]:
        raise ConfigError(f"config.MONITOR.LAYER must name a trunk feature (e.g. res5avg), got {m['LAYER']!r}")
    for name, metric in monitor_metrics().items():
        metric.validate(m[name], f"config.MONITOR.{name}")
    if m["ENABLED"] and not active_metrics(m):
        hints = ", or ".join(metric.hint for metric in monitor_metrics().values() if metric.hint)
        raise ConfigError(f"config.MONITOR.ENABLED=true but no evaluation set is named: give {hints}")


def check_monitor_paths(config) -> None:
    """Launcher preflight: every set an enabled monitor names reads (ConfigError naming the key)."""
    if "MONITOR" not in config:
        return
    m = monitor_cfg(config)
    if m["ENABLED"]:
        for name, metric in active_metrics(m):
            metric.check_paths(m[name], f"config.MONITOR.{name}")


# ------------------------------------------------------------------------------ features

def rank_and_world():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@contextmanager
def evaluating(module: torch.nn.Module):
    """``module`` in eval mode within; each submodule's own mode restored after (frozen parts too)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, mode in modes:
            m.training = mode


class ViewCache:
    """Decoded views of a rank's batches, kept between evaluations up to ``limit_mb`` (the sets are
    fixed, so each evaluation would decode and resize the same images again); batches past the
    limit are decoded each time."""

    def __init__(self, limit_mb: float):
        self.limit, self.used, self.batches = limit_mb * 2**20, 0, {}

    def get(self, key):
        return self.batches.get(key)

    def put(self, key, x: torch.Tensor) -> None:
        size = x.numel() * x.element_size()
        if self.used + size <= self.limit:
            self.batches[key] = x
            self.used += size


@torch.no_grad()
def extract_features(trunk, data: ImageSet, layer: str, batch_size: int, device, num_workers: int = 0,
                     cache: Optional[ViewCache] = None, key: str = ""):
    """Features [N, D] (flattened trunk output ``layer``, float32) on rank 0, None on the other
    ranks. Global batch b is encoded on rank b % world size: the same batches as in one process.
    ``cache``: decoded batches kept under ``(key, first row)``, reused by later calls."""
    import torch.distributed as dist

    rank, world = rank_and_world()
    n = len(data)
    batches = [list(range(s, min(s + batch_size, n))) for s in range(0, n, batch_size)]
    mine = batches[rank::world]
    cache = cache if cache is not None else ViewCache(0)
    todo = [rows for rows in mine if cache.get((key, rows[0])) is None]
    decoded = iter(torch.utils.data.DataLoader(_Stored(data), batch_sampler=todo, num_workers=num_workers)
                   if todo else ())
    out = None
    for rows in mine:
        x = cache.get((key, rows[0]))
        if x is None:
            x = next(decoded)
            cache.put((key, rows[0]), x)
        # finished on the device: a uint8 batch is a quarter of the float copy
        f = trunk(data.finish(x.to(device, non_blocking=True)), [layer])[0].flatten(1).float()
        if out is None:
            out = torch.zeros(n, f.shape[1], device=device)
        out[rows[0]: rows[-1] + 1] = f
    if world == 1:
        return out
    width = torch.tensor([0 if out is None else out.shape[1]], device=device)
    dist.all_reduce(width, op=dist.ReduceOp.MAX)  # a rank without a batch (more ranks than batches)
    if out is None:
        out = torch.zeros(n, int(width.item()), device=device)
    dist.reduce(out, dst=0)  # each row non-zero on one rank: the sum is that row, exactly
    return out if rank == 0 else None


@contextmanager
def rank0_buffers(module: torch.nn.Module):
    """Within: every rank's buffers (BN statistics) are rank 0's, as in its checkpoint; each
    rank's own are restored after. Ranks update their statistics with their own batches after
    DDP broadcasts rank 0's at the start of each forward, so after a step they differ."""
    import torch.distributed as dist

    if rank_and_world()[1] == 1:
        yield module
        return
    buffers = [b for b in module.buffers() if b.numel()]
    saved = [b.detach().clone() for b in buffers]
    for b in buffers:
        dist.broadcast(b.data, 0)
    try:
        yield module
    finally:
        with torch.no_grad():
            for b, s in zip(buffers, saved):
                b.copy_(s)


def _agree(flag: bool, device) -> bool:
    """Rank 0's ``flag`` on every rank (it alone reads monitor.jsonl)."""
    import torch.distributed as dist

    if rank_and_world()[1] == 1:
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.broadcast(t, 0)
    return bool(t.item())


# ------------------------------------------------------------------------------ the hook

def _every(n: int, unit: str) -> str:
    return "" if not n else unit if n == 1 else f"{n} {unit}s"


def _fmt(v: float) -> str:
    return f"{v:.2f}"


class MonitorHook(EventHook):
    def __init__(self, m: Dict[str, Any]):
        super().__init__()
        self.m = m
        self.metrics = active_metrics(m)
        self.sets: Dict[str, Dict[str, ImageSet]] = {}
        self.cache = ViewCache(m["CACHE_MB"])
        self.done = set()  # evaluated iterations (rank 0 reads them from monitor.jsonl)
        self.writer = None
        self.log_path = None
        self.device = None

    def _iters_per_epoch(self, task) -> int:
        return task.max_iteration // task.num_epochs if task.num_epochs > 0 and task.max_iteration > 0 else 0

    def due(self, task, iteration: int) -> bool:
        """Whether the schedule evaluates after ``iteration`` training steps."""
        n_it, n_ep, ipe = self.m["EVERY_N_ITERATIONS"], self.m["EVERY_N_EPOCHS"], self._iters_per_epoch(task)
        if n_it and iteration % n_it == 0:
            return True
        if ipe and iteration % ipe == 0:
            epoch = iteration // ipe
            return bool(n_ep and epoch % n_ep == 0) or epoch == task.num_epochs
        return iteration == task.max_iteration

    def on_start(self, task) -> None:
        rank, _ = rank_and_world()
        trunk = task.base_model.trunk
        self.device = next(trunk.parameters()).device
        self.sets = {name: metric.image_sets(self.m[name], self.m["IMAGE_SIZE"]) for name, metric in self.metrics}
        self.log_path = os.path.join(task.checkpoint_folder, LOG_NAME)
        if rank == 0:
            self.writer = tensorboard_writer(task)
            records = read_jsonl(self.log_path)
            if records and task.iteration == 0:  # a fresh start: the log is an earlier run's
                os.replace(self.log_path, self.log_path + ".previous")
                say(f"monitor: {self.log_path} of an earlier run moved to {LOG_NAME}.previous")
                records = []
            self.done = {int(r["iteration"]) for r in records if isinstance(r.get("iteration"), int)}
            sizes = ", ".join(f"{name.lower()} ({' + '.join(str(len(s)) for s in self.sets[name].values())} images)"
                              for name, _ in self.metrics)
            every = [_every(self.m["EVERY_N_EPOCHS"], "epoch"), _every(self.m["EVERY_N_ITERATIONS"], "iteration")]
            every = [e for e in every if e]
            when = f"every {' and '.join(every)} and " if every else ""
            say(f"monitor: {sizes} {when}at the end -> {self.log_path}")
        if task.iteration > 0 and self.due(task, task.iteration):
            self.maybe_evaluate(task)  # resumed from a due point: evaluated unless recorded

    def on_step(self, task) -> None:
        n = self.m["EVERY_N_ITERATIONS"]
        if task.train and n and task.iteration % n == 0:
            self.maybe_evaluate(task)

    def on_phase_end(self, task) -> None:
        # after VISSL's checkpoint hook (ours come after the host's): a kill during the
        # evaluation resumes from that checkpoint, whose on_start evaluates it
        if task.train and self.due(task, task.iteration):
            self.maybe_evaluate(task)

    def on_end(self, task) -> None:
        if self.writer is not None:
            self.writer.flush()

    def maybe_evaluate(self, task) -> None:
        it = task.iteration
        if _agree(it not in self.done, self.device):
            self.done.add(it)
            self.evaluate(task)

    def evaluate(self, task) -> List[dict]:
        """Encode every set (all ranks), score (rank 0), write the line, scalars and records."""
        rank, _ = rank_and_world()
        it = task.iteration
        ipe = self._iters_per_epoch(task)
        epoch = (it // ipe if it % ipe == 0 else round(it / ipe, 3)) if ipe else 0
        records = []
        trunk = task.base_model.trunk
        start = time.perf_counter()
        with evaluating(trunk), rank0_buffers(trunk):
            for name, metric in self.metrics:
                t0 = time.perf_counter()
                feats = {k: extract_features(trunk, s, self.m["LAYER"], self.m["BATCHSIZE"], self.device,
                                             self.m["NUM_WORKERS"], self.cache, f"{name}/{k}")
                         for k, s in self.sets[name].items()}
                if rank != 0:
                    continue
                try:
                    values = metric.score(self.m[name], feats, self.sets[name])
                except Exception as e:  # noqa: BLE001  (a monitor failure must not end a long run)
                    logging.exception(f"monitor: {name} failed at iteration {it}")
                    say(f"monitor: {name} failed at iteration {it}: {type(e).__name__}: {e}")
                    continue
                secs = round(time.perf_counter() - t0, 3)
                records += [{"epoch": epoch, "iteration": it, "metric": k, "value": float(v), "seconds": secs}
                            for k, v in values.items()]
        if rank == 0 and records:
            append_jsonl(self.log_path, records)
            if self.writer is not None:
                for r in records:
                    self.writer.add_scalar(f"Monitor/{r['metric']}", r["value"], global_step=it)
                self.writer.flush()
            secs = time.perf_counter() - start
            say(f"monitor: epoch {epoch} iter {it}  " + "  ".join(f"{r['metric']} {_fmt(r['value'])}" for r in records)
                + f"  ({secs:.1f} s)")
        return records


@register_hook_factory("monitor")
def monitor_hooks(cfg):
    if "MONITOR" not in cfg:
        return []
    m = monitor_cfg(cfg)
    return [MonitorHook(m)] if m["ENABLED"] else []
