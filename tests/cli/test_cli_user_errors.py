"""User errors of the offline tools: one ``error:`` line, exit code 2, no traceback, and nothing
written that the failed run leaves behind (issue 11, section 4)."""
import json
import os

import numpy as np
import pytest
from PIL import Image
from vissl_ext_testing import shared_path

from vissl_ext.cli.common import run_main
from vissl_ext.video import extract_cli
from vissl_ext.invariance import ris_cli


def one_error_line(capsys, main, argv) -> str:
    assert main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, err
    return lines[0]


def _extract_argv(video, out, short_side=64):
    return [video, out, "--short-side", short_side, "--max-frames", "3", "--no-progress"]


def test_extract_frames_rerun_with_other_settings(capsys, tmp_path):
    video = shared_path("video_opencv", "cup.mp4")
    assert extract_cli.main([str(a) for a in _extract_argv(video, tmp_path / "ex")]) == 0
    capsys.readouterr()
    line = one_error_line(capsys, extract_cli.main, _extract_argv(video, tmp_path / "ex", short_side=96))
    assert "extracted with other settings" in line and "'short_side': 64" in line


def _ris_manifest(path, n):
    path.write_text(json.dumps({"format": "vissl_ext.ris_manifest", "version": 1, "entries": [
        {"image": f"i{i}.png", "trajectory": f"t{i // 2}", "class": "c"} for i in range(n)]}))
    return path


def test_compute_ris_score_with_mismatched_features_creates_no_output(capsys, tmp_path):
    np.save(tmp_path / "f.npy", np.zeros((3, 8), np.float32))
    line = one_error_line(capsys, ris_cli.main, ["score", "--manifest", _ris_manifest(tmp_path / "m.json", 4),
                                                 "--features", tmp_path / "f.npy", "--model", "x",
                                                 "--out", tmp_path / "out"])
    assert "3 feature rows" in line and "4 images" in line
    assert not (tmp_path / "out").exists()


def test_compute_ris_report_on_a_missing_folder(capsys, tmp_path):
    line = one_error_line(capsys, ris_cli.main, ["report", tmp_path / "nowhere"])
    assert f"no such result file or folder: {tmp_path / 'nowhere'}" in line


def test_train_ade20k_strict_with_a_bad_label(capsys, tmp_path):
    from vissl_ext.segmentation import train_cli

    root = tmp_path / "ADEChallengeData2016"
    for split in ("training", "validation"):
        for d in ("images", "annotations"):
            (root / d / split).mkdir(parents=True)
        Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(root / "images" / split / "a.jpg")
        Image.fromarray(np.full((5, 5), 200, np.uint8)).save(root / "annotations" / split / "a.png")
    line = one_error_line(capsys, train_cli.main, ["--dataset-root", root, "--strict", "--no-progress",
                                                   "--num-gpus", "0", "OUTPUT_DIR", tmp_path / "seg"])
    assert "annotations/training/a.png" in line and "outside 0..150" in line


def _unwritable_folder():
    """An existing folder that even root cannot write into (sysfs); skips where it can be."""
    try:
        fd = os.open("/sys/.vissl_ext_write_test", os.O_CREAT | os.O_WRONLY)
    except OSError:
        return "/sys"
    os.close(fd)
    os.remove("/sys/.vissl_ext_write_test")
    pytest.skip("/sys is writable here")


@pytest.mark.parametrize("where", ["under_a_file", "under_proc", "read_only_folder"])
def test_extract_frames_unwritable_output_is_one_line_before_any_work(capsys, tmp_path, where):
    video = shared_path("video_opencv", "cup.mp4")
    if where == "under_a_file":
        (tmp_path / "f").write_text("")
        out = tmp_path / "f" / "out"
    elif where == "under_proc":
        out = "/proc/vissl_ext_out"
    else:
        out = _unwritable_folder()
    line = one_error_line(capsys, extract_cli.main, _extract_argv(video, out))
    assert f"output folder {out} cannot be written" in line


def test_extract_frames_output_failing_mid_run_is_not_an_unreadable_video(capsys, tmp_path):
    # the output folder takes files, but its frames/ folder is on an unwritable file system
    out = tmp_path / "ex"
    out.mkdir()
    os.symlink(_unwritable_folder(), out / "frames")
    line = one_error_line(capsys, extract_cli.main, _extract_argv(shared_path("video_opencv", "cup.mp4"), out))
    assert str(out / "frames") in line
    assert not list(out.glob("failed_*.json"))  # the video is not listed as unreadable


def test_disk_full_while_writing_is_one_error_line(capsys):
    def fill_disk(args):
        with open("/dev/full", "wb", buffering=0) as f:  # every write: ENOSPC
            f.write(b"x")

    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    line = one_error_line(capsys, lambda argv: run_main(lambda a: a, fill_disk, argv), [])
    assert "No space left on device" in line and "disk full" in line
