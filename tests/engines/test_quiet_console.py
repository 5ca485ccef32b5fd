"""The quiet console around VISSL's own logging setup and its own per-weight report."""
import logging
import sys

import pytest
import torch

import vissl_ext  # noqa: F401
from vissl_ext.utils.console import say
from vissl_ext.engines.quiet_console import QuietConsoleHandler, WeightLoadSummary, install


@pytest.fixture
def vissl_logging(monkeypatch, tmp_path):
    """VISSL's setup_logging (wrapped by install) for a run writing to tmp_path; the process's
    logging state is restored afterwards (VISSL rebinds logging.root)."""
    import vissl.utils.logger as host

    monkeypatch.delenv("VISSL_EXT_VERBOSE", raising=False)
    saved_root, saved_handlers = logging.root, list(logging.Logger.root.handlers)
    saved_setup, saved_showwarning = host.setup_logging, __import__("warnings").showwarning
    install()

    def setup(rank=0):
        host.setup_logging(f"test_quiet_{rank}", output_dir=str(tmp_path), rank=rank)
        return logging.root

    yield setup
    for h in list(logging.root.handlers):
        logging.root.removeHandler(h)
    logging.root = saved_root
    logging.Logger.root.handlers = saved_handlers
    host.setup_logging = saved_setup
    __import__("warnings").showwarning = saved_showwarning


def _model_and_checkpoint():
    model = torch.nn.ModuleDict({"trunk": torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)),
                                 "heads": torch.nn.Linear(4, 2)})
    sd = model.state_dict()
    ckpt = {k: v for k, v in sd.items() if k.startswith("trunk.") and k != "trunk.1.bias"}
    ckpt["trunk.extra.weight"] = torch.zeros(1)
    return sd, ckpt


def test_vissl_weight_report_becomes_one_console_line(vissl_logging, tmp_path, capsys):
    from vissl.config import AttrDict
    from vissl.utils.checkpoint import print_loaded_dict_info

    vissl_logging()
    model_sd, ckpt = _model_and_checkpoint()
    cfg = AttrDict({"FEATURE_EVAL_SETTINGS": {"EVAL_MODE_ON": False, "EVAL_TRUNK_AND_HEAD": False}})
    logging.info("Initializing model from: /ckpt/model_final.torch")
    print_loaded_dict_info(model_sd, ckpt, ["num_batches_tracked"], cfg)
    logging.info("some host detail")
    say("a console line")
    out = capsys.readouterr().out.splitlines()
    # trunk: conv w/b, bn w/running_mean/running_var loaded; bn bias missing; counter ignored
    assert out == ["weights from /ckpt/model_final.torch: trunk: 5 loaded, 1 missing, 1 ignored; heads: 2 new; "
                   "1 checkpoint tensors unused", "a console line"]
    for h in logging.root.handlers:
        h.flush()
    log = (tmp_path / "log.txt").read_text()
    assert log.count("Loaded: ") == 5 and "Not found:\t\ttrunk.1.bias" in log and "some host detail" in log


def test_warnings_and_errors_pass_host_noise_does_not(vissl_logging, capsys):
    vissl_logging()
    logging.warning("Selecting a CPU device")  # a host warning on every CPU run
    logging.warning("video_frame_pairs: 2 videos have no pair")
    logging.error("it broke")
    logging.info("Training with config:")
    logging.info("Rank: 0, name: test_accuracy_list_meter, value: {'top_1': {'res5': 12.5}}")  # host benchmark result
    import warnings

    warnings.warn("deprecated thing inside torch", FutureWarning)
    out = capsys.readouterr().out
    assert "video_frame_pairs: 2 videos have no pair" in out and "it broke" in out
    assert "name: test_accuracy_list_meter, value: {'top_1': {'res5': 12.5}}" in out
    assert "Selecting a CPU device" not in out and "Training with config" not in out and "deprecated thing" not in out


def test_rank_one_writes_its_own_log_and_prefixes_warnings(vissl_logging, tmp_path, capsys):
    vissl_logging(rank=1)
    logging.info("Using Distributed init method: tcp://x, world_size: 2, rank: 1")
    logging.warning("shard warning")
    for h in logging.root.handlers:
        h.flush()
    out = capsys.readouterr().out
    assert "rank: 1" not in out and "[rank 1] WARNING" in out
    assert not (tmp_path / "log.txt").exists()
    assert "world_size: 2, rank: 1" in (tmp_path / "log_rank1.txt").read_text()


def test_verbose_leaves_vissl_logging_alone(vissl_logging, monkeypatch, capsys):
    import vissl.utils.logger as host

    host.setup_logging = host.setup_logging._vissl_ext_original
    monkeypatch.setenv("VISSL_EXT_VERBOSE", "1")
    install()
    vissl_logging()
    assert not any(isinstance(h, QuietConsoleHandler) for h in logging.root.handlers)
    logging.info("Training with config:")
    assert "Training with config:" in capsys.readouterr().out


def test_weight_summary_names_groups():
    w = WeightLoadSummary()
    for line in ["Loaded: trunk.a of shape: x from checkpoint"] * 3 + ["Not found:\t\theads.0.w, not initialized"]:
        assert w.feed(line) is None
    assert w.feed("Extra layers not loaded from checkpoint: []") == "weights: trunk: 3 loaded, 0 missing; heads: 1 new"
    assert w.feed("Extra layers not loaded from checkpoint: []") == "weights: no layer reported"
