"""A hook that tells a person what a training run does: a header when training starts (data,
videos without shots under PAIR_SCOPE=shot, model, iterations, checkpoint folder, TensorBoard folder
when it is on), one line per logging step (loss and its terms, iterations/s, ETA) and a closing line. Rank 0
only; the lines also go to log.txt."""
import logging
import time

import torch

from vissl_ext.utils.console import say
from vissl_ext.hooks.base import EventHook
from vissl_ext.hooks.tensorboard_hook import tensorboard_dir
from vissl_ext.registry import register_hook_factory


def describe_source(src) -> str:
    """One phrase per data source: our video sources know their videos, frames and pairs."""
    name = getattr(src, "data_source", None) or type(src).__name__
    videos = getattr(src, "videos", None)
    if videos is not None:
        frames = sum(getattr(v, "num_frames", 0) for v in videos)
        unit = "pairs" if "pair" in str(name) else "samples"
        text = f"{name}: {len(videos)} videos, {frames} frames, {len(src)} {unit}"
        with_regions = getattr(src, "num_pairs_with_regions", None)
        if with_regions is not None:
            text += f" ({with_regions} with region pairs)"
        return text
    try:
        return f"{name}: {len(src)} images"
    except TypeError:
        return str(name)


def describe_data(task, split: str = "train") -> str:
    ds = (task.datasets or {}).get(split)
    if ds is None:
        return "none"
    parts = [describe_source(s) for s in getattr(ds, "data_objs", [])]
    used = len(ds)
    total = sum(len(s) for s in getattr(ds, "data_objs", []))
    if total and used != total:
        parts.append(f"{used} used (DATA_LIMIT)")
    return "; ".join(parts) or f"{used} samples"


def shots_notes(task, split: str = "train") -> list:
    """The pair sources' lines about videos without shots under PAIR_SCOPE=shot (one per source)."""
    ds = (task.datasets or {}).get(split)
    return [n for n in (getattr(s, "shots_note", None) for s in getattr(ds, "data_objs", [])) if n]


def describe_model(cfg, resumed: bool = False) -> str:
    m = cfg.MODEL
    trunk = m.TRUNK.NAME
    depth = m.TRUNK.RESNETS.DEPTH if "resnet" in trunk else ""
    heads = [p[0] for p in (m.HEAD.PARAMS or [])]
    init = "resumed from the checkpoint" if resumed else (m.WEIGHTS_INIT.PARAMS_FILE or "random init")
    return (f"{trunk}{depth} trunk, heads {heads or '-'}, loss {cfg.LOSS.name}, "
            f"weights: {init}")


class ConsoleProgressHook(EventHook):

    def __init__(self, log_frequency: int):
        super().__init__()
        self.log_frequency = max(1, int(log_frequency))
        self.t0 = None
        self.first_iteration = 0

    @staticmethod
    def _primary() -> bool:
        from classy_vision.generic.distributed_util import is_primary

        return is_primary()

    def on_start(self, task) -> None:
        if not self._primary():
            return
        cfg = task.config
        world = cfg.DISTRIBUTED.NUM_NODES * cfg.DISTRIBUTED.NUM_PROC_PER_NODE
        batch = cfg.DATA.TRAIN.BATCHSIZE_PER_REPLICA
        resumed = f", resuming at {task.iteration}" if task.iteration else ""
        say(f"data:   {describe_data(task)}")
        for note in shots_notes(task):  # a warning: pairs across cuts are false positives
            say(f"shots:  {note}", logging.WARNING)
        say(f"model:  {describe_model(cfg, resumed=bool(task.iteration))}")
        epochs = f"{task.num_epochs} epoch{'s' if task.num_epochs != 1 else ''}"
        say(f"train:  {task.max_iteration} iterations{resumed} ({epochs}, batch {batch} x "
            f"{world} process{'es' if world > 1 else ''}, {cfg.MACHINE.DEVICE}) -> {task.checkpoint_folder}")
        if cfg.HOOKS.TENSORBOARD_SETUP.USE_TENSORBOARD:
            tb = tensorboard_dir(task.checkpoint_folder)
            say(f"tensorboard: {tb}  (tensorboard --logdir {tb})")
        self.t0, self.first_iteration = time.time(), task.iteration

    def on_step(self, task) -> None:
        if not (task.train and self._primary()) or self.t0 is None:
            return
        it = task.iteration
        if it % self.log_frequency and it != task.max_iteration:
            return
        terms = {k: v for k, v in (getattr(task.loss, "last_terms", None) or {}).items()
                 if isinstance(v, torch.Tensor) and v.numel() == 1}
        # the loss terms stay on the device until here: one host read for all of them
        values = torch.stack([task.last_batch.loss.detach().float().reshape(())]
                             + [v.detach().float().reshape(()) for v in terms.values()]).tolist()
        text = f"iter {it:>{len(str(task.max_iteration))}}/{task.max_iteration}  loss {values[0]:.4f}"
        for k, v in zip(terms, values[1:]):
            text += f"  {k} {v:.4f}"
        done = it - self.first_iteration
        elapsed = time.time() - self.t0
        if done > 0 and elapsed > 0:
            rate = done / elapsed
            eta = (task.max_iteration - it) / rate
            speed = f"{rate:.2f} it/s" if rate >= 0.5 else f"{1 / rate:.1f} s/it"  # CPU runs: seconds per step
            text += f"  {speed}  ETA {_duration(eta)}"
        say(text)

    def on_end(self, task) -> None:
        if self._primary() and self.t0 is not None:
            say(f"trained {task.iteration - self.first_iteration} iterations in {_duration(time.time() - self.t0)}")


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


@register_hook_factory("console_progress")
def console_progress_hooks(cfg):
    return [ConsoleProgressHook(cfg.LOG_FREQUENCY)]
