"""Losses/<term> and Regions/* on TensorBoard from the loss's device-side terms (a real
SummaryWriter, read back with TensorBoard's EventAccumulator): one host read per logged step."""
from types import SimpleNamespace

import torch

from vissl_ext.hooks.tensorboard_hook import TermsTensorboardHook
from vissl_ext.utils.probes import count_host_syncs


def test_terms_reach_tensorboard_with_one_read(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    hook = TermsTensorboardHook(log_frequency=1)
    hook.writer = SummaryWriter(str(tmp_path))
    loss = SimpleNamespace(loss_config={"region_weight": 1.0}, num_batches_without_regions=torch.tensor([3]),
                           last_terms={"frame": torch.tensor(1.25), "region": torch.tensor(0.5), "regions": 7})
    task = SimpleNamespace(train=True, iteration=2, max_iteration=5, loss=loss,
                           last_batch=SimpleNamespace(loss=torch.tensor(1.5)),
                           optimizer=SimpleNamespace(options_view=SimpleNamespace(lr=0.03)))
    with count_host_syncs() as reads:
        hook.on_step(task)
    hook.on_end(task)
    assert reads.count() == 1
    acc = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0})
    acc.Reload()
    got = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    assert got["Losses/total"] == [(2, 1.5)] and got["Losses/frame"] == [(2, 1.25)] and got["Losses/region"] == [(2, 0.5)]
    assert got["Regions/pairs_per_step"] == [(2, 7.0)] and got["Regions/batches_without_regions"] == [(2, 3.0)]
