"""Atomic writes: final files get the mode the user's umask gives; file ids cannot leave a folder."""
import os
import stat

import pytest

from vissl_ext.utils.atomic_io import atomic_open, check_file_id, current_umask, write_json_atomic


@pytest.fixture
def umask():
    old = os.umask(0o022)
    os.umask(old)

    def set_(mask):
        os.umask(mask)

    yield set_
    os.umask(old)


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o027, 0o002, 0o077])
def test_atomic_write_gets_the_umask_mode(tmp_path, umask, mask):
    umask(mask)
    assert current_umask() == mask
    write_json_atomic(str(tmp_path / "r.json"), {"a": 1})
    with open(tmp_path / "plain.json", "w") as f:  # what a plain open() gives, the reference
        f.write("{}")
    assert _mode(tmp_path / "r.json") == _mode(tmp_path / "plain.json") == 0o666 & ~mask
    assert current_umask() == mask  # reading it did not change it


def test_results_of_tools_are_group_readable_under_umask_022(tmp_path, umask):
    """A RIS result JSON, a video manifest and a binary atomic write, under umask 022."""
    from vissl_ext.video.manifest import VideoEntry, save_manifest
    from vissl_ext.invariance.report import write_result

    umask(0o022)
    res = write_result(str(tmp_path), {"model": "m", "set": "s", "scores": {}})
    save_manifest(str(tmp_path / "manifest.json"), [VideoEntry(id="v", source="/x.mp4", frame_indices=[])])
    with atomic_open(str(tmp_path / "w.bin"), "wb") as f:
        f.write(b"\x00")
    for p in (res, tmp_path / "manifest.json", tmp_path / "w.bin"):
        assert _mode(p) == 0o644, p
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


@pytest.mark.parametrize("bad", ["", ".", "..", "/abs/x", "../x", "a/b", "a\\b", "x\0y", None, 3])
def test_check_file_id_rejects_ids_that_leave_the_folder(bad):
    with pytest.raises(ValueError, match="manifest.json: entry 4"):
        check_file_id(bad, "manifest.json: entry 4")


@pytest.mark.parametrize("good", ["clips__a", "v.1", "..a", "a..", "-x_y"])
def test_check_file_id_accepts_safe_ids(good):
    assert check_file_id(good, "w") == good
