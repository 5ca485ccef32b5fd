"""The benchmark scripts with their documented flags on a CPU-only machine, small sizes: they run,
or refuse a value with one argparse error (exit 2), never a traceback; no temp data left behind."""
import importlib.util
import os
import sys

import pytest
import torch

from vissl_ext_testing import REPO, shared_path


def _bench(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "benchmarks", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _main(monkeypatch, name, *argv):
    monkeypatch.setattr(sys, "argv", [f"{name}.py", *argv])
    return _bench(name).main()


def test_bench_ris_with_fewer_units_than_top_k(monkeypatch, capsys):
    """--d 8 < K=10: was a RISInputError traceback; Top-K is clipped to D."""
    assert _main(monkeypatch, "bench_ris", "--n", "300", "--d", "8", "--traj-len", "6", "--extract-images", "0",
                 "--repeats", "1") == 0
    assert "identical scores everywhere: True" in capsys.readouterr().out


@pytest.mark.parametrize("name,argv,says", [
    ("bench_ris", ["--n", "0"], "--n must be >= 3, got 0"),
    ("bench_ris", ["--traj-len", "1"], "--traj-len must be >= 3, got 1"),
    ("bench_ris", ["--n", "50", "--traj-len", "50"], "--traj-len 50 must be shorter than --n 50"),
    ("bench_gpu_aug", ["--cpu-samples", "0"], "--cpu-samples must be >= 1, got 0"),  # was ZeroDivisionError
    ("bench_gpu_aug", ["--device", "cpux"], "not a torch device"),
    ("bench_pairs", ["--pairs", "0"], "--pairs must be >= 1, got 0"),  # was ZeroDivisionError
    ("bench_pairs", ["--rounds", "0"], "--rounds must be >= 1, got 0"),  # was max() of an empty sequence
    ("bench_pairs", ["--videos", "/no/such/video.mp4"], "--videos: no such file"),
    ("bench_train_step", ["--variants", "fp32,fp16"], "--variants: unknown ['fp16']"),
    ("bench_train_step", ["--steps", "0"], "--steps must be >= 1, got 0"),
    ("bench_startup_tools", ["--runs", "0"], "--runs must be >= 1, got 0"),  # median of no run
    ("bench_startup_tools", ["--repo", "/no/such/checkout"], "no tools/extract_frames.py there"),
])
def test_bad_flag_values_are_argparse_errors(monkeypatch, capsys, name, argv, says):
    with pytest.raises(SystemExit) as e:
        _main(monkeypatch, name, *argv)
    assert e.value.code == 2 and says in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
@pytest.mark.parametrize("name", ["bench_ris", "bench_gpu_aug", "bench_train_step"])
def test_cuda_flag_without_cuda_says_so(monkeypatch, capsys, name):
    """Was 'RuntimeError: Found no NVIDIA driver' from deep inside torch."""
    with pytest.raises(SystemExit) as e:
        _main(monkeypatch, name, "--device", "cuda", *(["--extract-images", "0"] if name == "bench_ris" else []))
    assert e.value.code == 2 and "CUDA is not available on this machine" in capsys.readouterr().err


def test_bench_pairs_leaves_no_frames_in_tmp(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)  # re-read TMPDIR
    video = shared_path("video_opencv", "box.mp4")
    _main(monkeypatch, "bench_pairs", "--videos", video, "--backends-only", "--pairs", "2", "--rounds", "1",
          "--short-side", "64")
    assert "aims: fast" in capsys.readouterr().out
    assert os.listdir(tmp_path) == []


@pytest.mark.slow  # builds four ResNet-50 models
def test_bench_train_step_reports_fp32_against_amp_and_channels_last(monkeypatch, capsys):
    assert _main(monkeypatch, "bench_train_step", "--batch", "2", "--size", "32", "--steps", "1", "--regions", "1",
                 "--variants", "fp32,amp_channels_last", "--embedding", "pool_then_project") == 0
    out = capsys.readouterr().out
    assert "AMP = bf16 autocast" in out and "region embedding pool_then_project" in out
    rows = [ln.split() for ln in out.splitlines() if ln.startswith(("fp32 ", "amp_channels_last ")) and "s/step" in ln]
    assert [r[0] for r in rows] == ["fp32", "amp_channels_last"]
    assert all(float(r[1]) > 0 and float(r[3]) > 0 for r in rows)  # s/step of both models
    assert "amp_channels_last vs fp32: frame_temporal x" in out


@pytest.mark.parametrize("argv,message", [
    (["--tracks", "{tmp}"], "--tracks: no index.json"),
    (["--frames", "-1"], "--frames must be >= 0"),
    (["--tracks", "{tmp}", "--videos", "a.mp4"], "--videos or --tracks, not both"),
])
def test_bench_region_pairs_refuses_bad_flags(monkeypatch, capsys, tmp_path, argv, message):
    with pytest.raises(SystemExit) as e:
        _main(monkeypatch, "bench_region_pairs", *[a.format(tmp=tmp_path) for a in argv])
    assert e.value.code == 2 and message in capsys.readouterr().err
