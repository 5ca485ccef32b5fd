"""A run without DATA_PATHS says which data it picked (the demo's) and how to give one's own."""
import logging

from vissl_ext_testing import compose


def test_region_tracker_without_data_paths_names_the_demo_tracks(caplog, tmp_path, monkeypatch):
    with caplog.at_level(logging.WARNING, logger="vissl_ext"):
        compose("config=pretrain/region_tracker")
    msg = [r.getMessage() for r in caplog.records if "DATA_PATHS is not set" in r.getMessage()]
    assert len(msg) == 1
    assert "vissl_ext_demo_tracks" in msg[0] and "tracks/index.json" in msg[0]
    assert "config.DATA.TRAIN.DATA_PATHS=[<folder>]" in msg[0]


def test_given_data_paths_log_nothing(caplog, tmp_path):
    with caplog.at_level(logging.WARNING, logger="vissl_ext"):
        compose("config=pretrain/region_tracker", f"config.DATA.TRAIN.DATA_PATHS=[{tmp_path}]")
    assert not [r for r in caplog.records if "DATA_PATHS is not set" in r.getMessage()]
