"""The procedural turntable: deterministic from its seed, seeds give other objects, and the frames
really turn (near poses look alike, opposite poses do not, a full turn comes back)."""
import os

import numpy as np
import pytest

from vissl_ext.study.turntable import make_object, render, write_turntable
from vissl_ext.study.turntable_cli import main


def _dist(a, b):
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).mean())


def test_written_set_is_deterministic_and_seeded(tmp_path):
    write_turntable(str(tmp_path / "a"), objects=2, poses=4, size=24, seed=3)
    write_turntable(str(tmp_path / "b"), objects=2, poses=4, size=24, seed=3)
    write_turntable(str(tmp_path / "c"), objects=2, poses=4, size=24, seed=4)
    names = sorted(os.listdir(tmp_path / "a"))
    assert names == ["s3_obj00000", "s3_obj00001"]
    for n in names:
        assert sorted(os.listdir(tmp_path / "a" / n)) == ["000.png", "001.png", "002.png", "003.png"]
        for f in os.listdir(tmp_path / "a" / n):
            assert (tmp_path / "a" / n / f).read_bytes() == (tmp_path / "b" / n / f).read_bytes()
    # another seed, other objects: no frame of seed 4 equals the frame of seed 3 at the same pose
    for i in range(2):
        a = (tmp_path / "a" / f"s3_obj{i:05d}" / "000.png").read_bytes()
        c = (tmp_path / "c" / f"s4_obj{i:05d}" / "000.png").read_bytes()
        assert a != c


def test_frames_turn():
    near, far = [], []
    for i in range(6):
        obj = make_object(0, i)
        frames = [render(obj, 2 * np.pi * p / 24, 48) for p in range(25)]
        # the object covers part of the frame (not empty, not everything)
        covered = (np.abs(frames[0].astype(int) - 118).sum(2) > 10).mean()
        assert 0.05 < covered < 0.9
        assert np.array_equal(frames[0], frames[24])  # a full turn is the first pose again
        near += [_dist(frames[p], frames[p + 1]) for p in range(0, 24, 4)]
        far += [_dist(frames[p], frames[p + 12]) for p in range(0, 12, 4)]
    assert min(near) > 0  # every step moves
    assert np.mean(near) < 0.5 * np.mean(far)


def test_both_shape_kinds_occur():
    assert {make_object(0, i).kind for i in range(20)} == {"polyhedron", "extrusion"}


def test_cli_user_error(tmp_path, capsys):
    assert main([str(tmp_path / "o"), "--objects", "0"]) == 2
    assert capsys.readouterr().err.startswith("error: turntable needs objects >= 1")
