"""The console line of a logging step shows the loss terms, which stay on the device until then:
one host read for the loss and all its terms."""
import logging
import time
from types import SimpleNamespace

import torch

from vissl_ext.hooks.progress_hook import ConsoleProgressHook
from vissl_ext.utils.probes import count_host_syncs


def test_terms_are_read_once_per_logged_step(caplog):
    hook = ConsoleProgressHook(log_frequency=2)
    hook.t0, hook.first_iteration = time.time() - 10, 0
    terms = {"frame": torch.tensor(1.25), "region": torch.tensor(0.5), "regions": 7}
    task = SimpleNamespace(train=True, iteration=4, max_iteration=10, loss=SimpleNamespace(last_terms=terms),
                           last_batch=SimpleNamespace(loss=torch.tensor(1.5)))
    with caplog.at_level(logging.INFO), count_host_syncs() as reads:
        hook.on_step(task)
        task.iteration = 5  # not a logging step: nothing read
        hook.on_step(task)
    assert reads.count() == 1
    line = [r.getMessage() for r in caplog.records if r.getMessage().startswith("iter")]
    assert len(line) == 1 and "loss 1.5000  frame 1.2500  region 0.5000" in line[0]
