"""A hook that tells a person what a training run does: a header when training starts (data,
model, iterations, checkpoint folder, TensorBoard folder when it is on), one line per logging step (loss and its terms,
iterations/s, ETA) and a closing line. Rank 0 only; the lines also go to log.txt."""
import time

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
        loss = task.last_batch.loss
        text = f"iter {it:>{len(str(task.max_iteration))}}/{task.max_iteration}  loss {float(loss):.4f}"
        terms = getattr(task.loss, "last_terms", None) or {}
        for k, v in terms.items():
            if isinstance(v, float):
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
