"""Fixtures shared by every test folder; utilities live in vissl_ext_testing.py."""
import os

import pytest

from vissl_ext_testing import REPO, extract, shared_path


@pytest.fixture
def shared():
    return shared_path


@pytest.fixture(scope="session")
def repo_root():
    return REPO


@pytest.fixture(scope="session")
def video_frames_dir(tmp_path_factory):
    """Two real videos of ../shared/data extracted once (stride 4, short side 96)."""
    bag = shared_path("video_pysot_bag", "bag.avi")
    cup = shared_path("video_opencv", "cup.mp4")
    out = tmp_path_factory.mktemp("frames")
    s = extract([bag, cup], out, stride=4, max_frames=40)
    assert s["failed"] == 0 and s["videos_in_manifest"] == 2
    return out


@pytest.fixture(scope="session")
def joined_clip(tmp_path_factory):
    """(path, true shot starts) of five real single-shot clips joined end to end (40 frames each)."""
    from vissl_ext_testing import make_joined_clip

    return make_joined_clip(tmp_path_factory.mktemp("joined"))


@pytest.fixture(scope="session")
def joined_frames(joined_clip, tmp_path_factory):
    """The joined clip extracted at stride 2 with the defaults (shot detection in the same pass)."""
    out = tmp_path_factory.mktemp("joined_frames")
    s = extract([joined_clip[0]], out, stride=2)
    assert s["failed"] == 0 and s["videos_in_manifest"] == 1
    return out


@pytest.fixture(scope="session")
def tracks(video_frames_dir, tmp_path_factory):
    """Region Tracker tracks of ``video_frames_dir`` (real selective search, random-init baseline
    trunk), made once per session: the Region Tracker runs and the monitor runs train on them."""
    import subprocess
    import sys

    d = tmp_path_factory.mktemp("tracks")
    manifest = video_frames_dir / "manifest.json"
    for name, *args in (("propose_regions.py", manifest, d / "proposals", "--no-progress"),
                        ("track_regions.py", manifest, d / "proposals", d / "tracks", "--checkpoint", "random",
                         "--config", "pretrain/tiny/moco_video_baseline_cpu", "--input-short-side", "96",
                         "--no-progress")):
        p = subprocess.run([sys.executable, os.path.join(REPO, "tools", name), *map(str, args)], capture_output=True,
                           text=True)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return d / "tracks"


@pytest.fixture(scope="session")
def shot_temporal_two_processes(joined_frames, tmp_path_factory):
    """One 2-process gloo run of pretrain/tiny/shot_temporal_cpu on ``joined_frames`` (2
    iterations), shared by the tests of its queues (tests/test_shot_temporal_runs.py) and of the
    monitor inside it (tests/hooks/test_monitor_runs.py): every rank dumps its loss state
    (vissl_ext_testing.QUEUE_DUMP_PLUGIN), and the monitor evaluates the end of training on
    ``monitor_sets`` at 64 px with TensorBoard on. Returns (folder, return code, console, sets)."""
    from vissl_ext_testing import monitor_sets, queue_dump_env, run_engine

    tmp = tmp_path_factory.mktemp("shot_temporal_2proc")
    sets = monitor_sets(tmp / "monitor_sets")
    env = dict(queue_dump_env(tmp), VISSL_EXT_VERBOSE="1")
    rc, out = run_engine(["config=pretrain/tiny/shot_temporal_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{joined_frames}/manifest.json]",
                          f"config.CHECKPOINT.DIR={tmp}/ck", "config.DISTRIBUTED.NUM_PROC_PER_NODE=2",
                          "config.MULTI_PROCESSING_METHOD=spawn", "config.DATA.TRAIN.DATA_LIMIT=16",
                          "config.MONITOR.ENABLED=true", f"config.MONITOR.KNN.TRAIN={sets[0]}",
                          f"config.MONITOR.KNN.VAL={sets[1]}", f"config.MONITOR.RIS.MANIFEST={sets[2]}",
                          "config.MONITOR.IMAGE_SIZE=64", "config.MONITOR.BATCHSIZE=8",
                          "config.HOOKS.TENSORBOARD_SETUP.USE_TENSORBOARD=true"], cwd=tmp, env=env, timeout=1500)
    return tmp, rc, out, sets


@pytest.fixture(scope="session")
def frame_temporal_two_iterations(video_frames_dir, tmp_path_factory):
    """pretrain/tiny/frame_temporal_cpu trained 2 iterations (VISSL's launcher, CPU) on
    ``video_frames_dir`` with its shots dropped from the manifest (one written before shots were on
    by default), shared by tests/test_training_runs.py (the run and its console) and
    tests/downstream/test_export.py (its checkpoint). Returns (folder, manifest, return code,
    console); the checkpoints are in folder/ck."""
    from vissl_ext.video.manifest import load_manifest, save_manifest
    from vissl_ext_testing import run_engine

    tmp = tmp_path_factory.mktemp("frame_temporal_2it")
    videos = load_manifest(str(video_frames_dir / "manifest.json"))
    for v in videos:
        v.shots = None
    manifest = tmp / "manifest.json"
    save_manifest(str(manifest), videos)
    rc, out = run_engine(["config=pretrain/tiny/frame_temporal_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{manifest}]",
                          f"config.CHECKPOINT.DIR={tmp}/ck"], cwd=tmp)
    return tmp, manifest, rc, out


@pytest.fixture(scope="session")
def region_tracker_resumed(tracks, tmp_path_factory):
    """pretrain/tiny/region_tracker_cpu on ``tracks``: 2 epochs of one step (8 samples, batch 8),
    momentum 0.9, a region queue of 1024, the online monitor (``monitor_sets`` at 64 px) and
    TensorBoard on; then a kill between epoch 1's checkpoint and its evaluation, made by hand
    (final checkpoint removed, checkpoint.torch = model_phase0.torch, monitor.jsonl left with
    iteration 2's records and a cut line of iteration 1's), and the same command again. Shared by
    the resume test of tests/test_region_tracker_runs.py and the monitor's run test
    (tests/hooks/test_monitor_runs.py). What the first run left is kept aside: its final
    checkpoint (``first_final``), tb_logs (``first_tb``) and monitor records (``first_records``)."""
    import json
    import shutil
    from types import SimpleNamespace

    from vissl_ext.utils.atomic_io import read_jsonl
    from vissl_ext_testing import monitor_sets, run_engine

    tmp = tmp_path_factory.mktemp("region_tracker_resumed")
    sets = monitor_sets(tmp / "monitor_sets")
    ck = tmp / "ck"
    args = ["config=pretrain/tiny/region_tracker_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{tracks}]", f"config.CHECKPOINT.DIR={ck}",
            "config.OPTIMIZER.num_epochs=2", "config.DATA.TRAIN.BATCHSIZE_PER_REPLICA=8",
            # a region queue large enough that phase 1 cannot wrap over the keys of phase 0
            "config.LOSS.temporal_contrastive_loss.region_queue_size=1024", "config.LOSS.temporal_contrastive_loss.momentum=0.9",
            "config.MONITOR.ENABLED=true", f"config.MONITOR.KNN.TRAIN={sets[0]}", f"config.MONITOR.KNN.VAL={sets[1]}",
            f"config.MONITOR.RIS.MANIFEST={sets[2]}", "config.MONITOR.IMAGE_SIZE=64",
            "config.HOOKS.TENSORBOARD_SETUP.USE_TENSORBOARD=true"]
    r = SimpleNamespace(folder=tmp, ck=ck, args=args, sets=sets, momentum=0.9, first=run_engine(args, cwd=tmp))
    if r.first[0] != 0:
        return r
    r.first_final = tmp / "first_final.torch"
    shutil.copy(ck / "model_final_checkpoint_phase1.torch", r.first_final)
    r.first_tb = tmp / "first_tb"
    shutil.copytree(ck / "tb_logs", r.first_tb)
    r.first_records = read_jsonl(str(ck / "monitor.jsonl"))
    os.remove(ck / "model_final_checkpoint_phase1.torch")
    os.remove(ck / "checkpoint.torch")
    shutil.copy(ck / "model_phase0.torch", ck / "checkpoint.torch")
    with open(ck / "monitor.jsonl", "w") as f:
        f.writelines(json.dumps(x) + "\n" for x in r.first_records if x["iteration"] == 2)
        f.write('{"epoch": 1, "iteration": 1, "metric": "knn_')
    r.second = run_engine(args, cwd=tmp)
    return r
