"""User errors through the launcher (tools/run_distributed_engines.py): one ``error:`` line
naming the key or file, exit code 2, before any worker starts (issue 11, section 4).

In-process ``vissl_ext.engines.launcher.main``: it returns 2 before ``launch``, so no worker was spawned.
"""
import json

import pytest
import torch
from vissl_ext_testing import run_engine, one_error_line


TINY = "config=pretrain/tiny/frame_temporal_cpu"
TINY_RT = "config=pretrain/tiny/region_tracker_cpu"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    # VISSL's compose writes train_config.yaml into CHECKPOINT.DIR (relative in our configs)
    monkeypatch.chdir(tmp_path)



@pytest.mark.parametrize("overrides,names,nearest", [
    ([TINY, "config.DATA.TRAIN.VIDEO.PAIR_GAPP=2"], "config.DATA.TRAIN.VIDEO.PAIR_GAPP", "PAIR_GAP"),
    ([TINY, "+config.DATA.TRAIN.VIDEO.PAIR_GAPP=2"], "PAIR_GAPP", "PAIR_GAP"),
    ([TINY_RT, "config.LOSS.temporal_contrastive_loss.temprature=0.1"],
     "config.LOSS.temporal_contrastive_loss.temprature", "temperature"),
    ([TINY, "config.OPTIMIZER.num_epoch=2"], "config.OPTIMIZER.num_epoch", "num_epochs"),  # a host key
    ([TINY, "config.OPTIMIZR.num_epochs=2"], "config.OPTIMIZR.num_epochs", "OPTIMIZER"),  # a misspelled section
])
def test_misspelled_key_names_the_nearest_known_key(capsys, overrides, names, nearest):
    line = one_error_line(capsys, overrides)
    assert names in line and f"did you mean `{nearest}`?" in line


def test_unknown_config_file_and_unparsable_override(capsys):
    assert "pretrain/region_trackr" in one_error_line(capsys, ["config=pretrain/region_trackr"])
    assert "[a" in one_error_line(capsys, [TINY, "config.DATA.TRAIN.DATA_LIMIT=[a"])


@pytest.mark.parametrize("overrides,names", [
    ([TINY_RT, "config.LOSS.temporal_contrastive_loss.temperature=abc"], "temperature must be a number"),
    ([TINY_RT, "config.LOSS.temporal_contrastive_loss.momentum=high"], "momentum must be a number"),
    ([TINY_RT, "config.LOSS.temporal_contrastive_loss.region_weight=abc"], "region_weight must be a number"),
    ([TINY_RT, "config.LOSS.temporal_contrastive_loss.queue_size=true"], "queue_size must be an integer"),
    ([TINY, "config.DATA.TRAIN.VIDEO.PAIR_GAP=true"], "PAIR_GAP must be an integer"),
    ([TINY, "config.DATA.TRAIN.VIDEO.PAIR_GAP=abc"], "PAIR_GAP must be an integer"),
    ([TINY, "config.DATA.TRAIN.VIDEO.FRAMES_PER_VIDEO=false"], "FRAMES_PER_VIDEO must be an integer"),
])
def test_wrong_types_are_config_errors(capsys, overrides, names):
    assert names in one_error_line(capsys, overrides)


def test_missing_gpus_name_the_overrides_for_this_machine(capsys):
    have = torch.cuda.device_count()
    line = one_error_line(capsys, ["config=pretrain/region_tracker", f"config.DISTRIBUTED.NUM_PROC_PER_NODE={have + 1}"])
    if have == 0:
        assert "no GPU" in line
        assert ("config.MACHINE.DEVICE=cpu config.DISTRIBUTED.BACKEND=gloo config.DISTRIBUTED.NUM_PROC_PER_NODE=1"
                in line)
    else:
        assert f"has {have} GPU" in line and f"config.DISTRIBUTED.NUM_PROC_PER_NODE={have}" in line


def test_the_main_command_without_gpus_is_one_line_through_the_real_tool(tmp_path):
    if torch.cuda.device_count() >= 8:
        pytest.skip("this machine has the 8 GPUs of pretrain/region_tracker")
    rc, out = run_engine(["config=pretrain/region_tracker"], cwd=tmp_path, timeout=300)
    assert rc == 2, out
    assert "Traceback" not in out and "AssertionError" not in out
    errors = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "NUM_PROC_PER_NODE" in errors[0], out


def _manifest(path, videos):
    path.write_text(json.dumps({"format": "vissl_ext.video_manifest", "version": 1, "videos": videos}))
    return path


@pytest.mark.parametrize("case", ["missing", "empty_folder", "invalid_json", "missing_files", "last_of_many_missing",
                                  "no_video"])
def test_bad_video_data_paths_fail_before_any_worker(capsys, tmp_path, case):
    if case == "missing":
        path, expect = tmp_path / "nowhere", "does not exist"
    elif case == "empty_folder":
        (tmp_path / "empty").mkdir()
        path, expect = tmp_path / "empty", "empty folder"
    elif case == "invalid_json":
        path, expect = tmp_path / "manifest.json", "not valid JSON"
        path.write_text('{"format": "vissl_ext.video_manifest", "videos": [')
    elif case == "missing_files":
        (tmp_path / "frames" / "a").mkdir(parents=True)
        path = _manifest(tmp_path / "manifest.json", [
            {"id": "a", "source": None, "frames_dir": "frames/a", "frames": ["000000.jpg"], "frame_indices": [0]}])
        expect = "000000.jpg"
    elif case == "last_of_many_missing":  # every file is checked here, not a sample (the ranks trust it)
        videos = []
        for i in range(300):
            (tmp_path / "frames" / f"v{i}").mkdir(parents=True)
            if i < 299:
                (tmp_path / "frames" / f"v{i}" / "000000.jpg").write_bytes(b"")
            videos.append({"id": f"v{i}", "source": None, "frames_dir": f"frames/v{i}", "frames": ["000000.jpg"],
                           "frame_indices": [0]})
        path, expect = _manifest(tmp_path / "manifest.json", videos), "v299/000000.jpg"
    else:
        path, expect = _manifest(tmp_path / "manifest.json", []), "lists no video"
    line = one_error_line(capsys, [TINY, f"config.DATA.TRAIN.DATA_PATHS=[{path}]"])
    assert "config.DATA.TRAIN.DATA_PATHS" in line and str(path) in line and expect in line


def test_bad_tracks_index_fails_before_any_worker(capsys, tmp_path):
    (tmp_path / "index.json").write_text("{")
    line = one_error_line(capsys, [TINY_RT, f"config.DATA.TRAIN.DATA_PATHS=[{tmp_path}]"])
    assert "index.json" in line and "not valid JSON" in line


def test_ris_manifest_listing_missing_images_fails_before_any_worker(capsys, tmp_path):
    m = tmp_path / "ris.json"
    m.write_text(json.dumps({"format": "vissl_ext.ris_manifest", "version": 1, "entries": [
        {"image": "gone/0.png", "trajectory": "t", "class": "c"}]}))
    line = one_error_line(capsys, ["config=benchmark/ris/aloi_viewpoint", "config.MACHINE.DEVICE=cpu",
                                   "config.DISTRIBUTED.NUM_PROC_PER_NODE=1", f"config.DATA.TEST.DATA_PATHS=[{m}]"])
    assert "missing images" in line and "gone/0.png" in line


@pytest.mark.parametrize("overrides,names", [
    # VISSL asserts a CUDA device in every worker (a 34-line traceback): one line naming what works
    ([TINY_RT, "config.MODEL.AMP_PARAMS.USE_AMP=true"], ["config.MODEL.AMP_PARAMS.USE_AMP=false",
                                                          "config.MODEL.AMP_PARAMS.AMP_TYPE=pytorch"]),
    (["config=pretrain/tiny/shot_temporal_cpu", "config.MODEL.AMP_PARAMS.USE_AMP=true",
      "config.MODEL.AMP_PARAMS.AMP_TYPE=pytorch"], ["config.MODEL.AMP_PARAMS.USE_AMP=false"]),
    ([TINY_RT, "config.MODEL.AMP_PARAMS.USE_AMP=true", "config.MODEL.AMP_PARAMS.AMP_TYPE=pytroch"],
     ["config.MODEL.AMP_PARAMS.AMP_TYPE", "did you mean `pytorch`?"]),
])
def test_mixed_precision_where_vissl_cannot_run_it(capsys, overrides, names):
    line = one_error_line(capsys, overrides)
    assert all(n in line for n in names), line


def test_apex_amp_without_apex_names_pytorch_amp(capsys):
    from vissl.utils.misc import is_apex_available

    if is_apex_available():
        pytest.skip("apex is installed here")
    gpu = ["config=pretrain/region_tracker", f"config.DISTRIBUTED.NUM_PROC_PER_NODE={max(torch.cuda.device_count(), 1)}",
           "config.MODEL.AMP_PARAMS.USE_AMP=true"]
    line = one_error_line(capsys, gpu)  # AMP_TYPE: VISSL's default, apex
    assert "apex is not installed" in line and "config.MODEL.AMP_PARAMS.AMP_TYPE=pytorch" in line
    if torch.cuda.device_count() == 0:  # with PyTorch's AMP the next check is the machine's missing GPU
        assert "no GPU" in one_error_line(capsys, gpu + ["config.MODEL.AMP_PARAMS.AMP_TYPE=pytorch"])
