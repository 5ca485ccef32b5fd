"""Every term on a dashboard: with ``config.HOOKS.TENSORBOARD_SETUP.USE_TENSORBOARD=true`` (the
host's switch; VISSL's own hook writes Training/Loss and a rounded learning rate to
``<checkpoint folder>/tb_logs``), this hook adds, into the same event files, at every
``LOG_FREQUENCY``-th iteration and the last:

- ``Losses/<term>``: each term the loss reports (ours: frame, region, shot) and ``Losses/total``;
- ``Regions/pairs_per_step`` (region pairs of the step, all ranks) and
  ``Regions/batches_without_regions`` (batches whose pairs were all cropped away, so far, all
  ranks), for losses with a region term;
- ``Optimization/learning_rate``, unrounded.

Steps are training iterations done (1 after the first step), as on the console. The monitor's
``Monitor/<metric>`` scalars go to the same writer (vissl_ext/hooks/monitor_hook.py).
"""
import torch

from vissl_ext.hooks.base import EventHook
from vissl_ext.registry import register_hook_factory


def tensorboard_writer(task):
    """The SummaryWriter of VISSL's tensorboard hook in ``task``, or None (switched off)."""
    from vissl.hooks import SSLTensorboardHook

    return next((h.tb_writer for h in task.hooks if isinstance(h, SSLTensorboardHook)), None)


def tensorboard_dir(checkpoint_folder: str) -> str:
    return f"{checkpoint_folder}/tb_logs"  # as vissl.utils.tensorboard.get_tensorboard_dir


class TermsTensorboardHook(EventHook):

    def __init__(self, log_frequency: int):
        super().__init__()
        self.log_frequency = max(1, int(log_frequency))
        self.writer = None

    def on_start(self, task) -> None:
        from classy_vision.generic.distributed_util import is_primary

        self.writer = tensorboard_writer(task) if is_primary() else None

    def on_step(self, task) -> None:
        it = task.iteration
        if not task.train or (it % self.log_frequency and it != task.max_iteration):
            return
        loss = task.loss
        counts = []
        if getattr(loss, "loss_config", {}).get("region_weight", 0) > 0 and hasattr(loss, "num_batches_without_regions"):
            # summed over ranks: every rank takes this branch at the same iterations
            without = loss.num_batches_without_regions.float().sum().reshape(1)
            counts = torch.cat([without.new_full((1,), float(loss.last_terms.get("regions", 0))), without])
            if torch.distributed.is_available() and torch.distributed.is_initialized():
                torch.distributed.all_reduce(counts)
            counts = list(counts)
        w = self.writer
        if w is None:
            return
        # the loss terms stay on the device until here: one host read for them, the loss and the counts
        terms = {k: v for k, v in (getattr(loss, "last_terms", None) or {}).items()
                 if isinstance(v, torch.Tensor) and v.numel() == 1}
        values = torch.stack([task.last_batch.loss.detach().float().reshape(())]
                             + [v.detach().float().reshape(()) for v in terms.values()] + counts).tolist()
        w.add_scalar("Losses/total", values[0], global_step=it)
        for name, value in zip(terms, values[1:]):
            w.add_scalar(f"Losses/{name}", value, global_step=it)
        if counts:
            w.add_scalar("Regions/pairs_per_step", values[-2], global_step=it)
            w.add_scalar("Regions/batches_without_regions", values[-1], global_step=it)
        w.add_scalar("Optimization/learning_rate", float(task.optimizer.options_view.lr), global_step=it)

    def on_end(self, task) -> None:
        if self.writer is not None:
            self.writer.flush()  # VISSL's writer flushes every FLUSH_EVERY_N_MIN and never closes


@register_hook_factory("tensorboard_terms")
def tensorboard_terms_hooks(cfg):
    if not cfg.HOOKS.TENSORBOARD_SETUP.USE_TENSORBOARD:
        return []
    return [TermsTensorboardHook(cfg.LOG_FREQUENCY)]
