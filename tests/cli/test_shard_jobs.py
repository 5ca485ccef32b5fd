"""The offline chain as submitit array jobs (LocalExecutor: real processes, no cluster):
two shards, one killed before it finishes and resubmitted by a rerun, then one merge; the
outputs equal a single-process run's. Also: which options a task's command line keeps, and
proposals that do not depend on which process or batch made them."""
import json
import logging
import os

import numpy as np
import pytest

from vissl_ext.video.manifest import load_manifest
from vissl_ext.cli.shard_jobs import strip_slurm_options
from vissl_ext.tracking.proposals import ProposalParams, load_proposals, propose_frame
from vissl_ext_testing import fault_injection_env, shared_path


def test_strip_slurm_options():
    argv = ["a.mp4", "out", "--stride", "4", "--slurm", "--slurm-shards", "2", "--partition=dev",
            "--slurm-cluster", "local", "--mem-gb", "8", "--slurm-no-wait", "--no-progress"]
    assert strip_slurm_options(argv) == ["a.mp4", "out", "--stride", "4", "--no-progress"]


def test_proposals_are_fixed_by_video_and_frame():
    from PIL import Image

    img = Image.open(shared_path("ade20k_sceneparsing", "ADEChallengeData2016", "images", "validation",
                                 "ADE_val_00000001.jpg")).convert("RGB").resize((160, 120))
    p = ProposalParams(ss_short_side=0, nms_iou=0.0, top_r=1000)
    a, _ = propose_frame(img, p, seed=7)
    propose_frame(img, p, seed=8)  # other work in between must not matter
    b, _ = propose_frame(img, p, seed=7)
    c, _ = propose_frame(img, p, seed=8)
    np.testing.assert_array_equal(a, b)
    # the seed does matter (the ranking is random in OpenCV): same boxes, another order
    assert not np.array_equal(a, c) and {tuple(r) for r in a} == {tuple(r) for r in c}


def _main(module, argv, env=None):
    import importlib

    mod = importlib.import_module(module)
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        return mod.run(mod.parse_args([str(a) for a in argv]))
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _frames(out):
    root = os.path.join(out, "frames")
    return {os.path.relpath(os.path.join(d, f), root): open(os.path.join(d, f), "rb").read()
            for d, _, fs in os.walk(root) for f in fs if f.endswith(".jpg")}


@pytest.mark.slow
def test_chain_on_local_array_jobs_equals_one_process(tmp_path):
    videos = [shared_path("video_pysot_bag", "bag.avi"), shared_path("video_opencv", "cup.mp4")]
    ex = ["--stride", "6", "--max-frames", "8", "--short-side", "96", "--no-progress"]
    slurm = ["--slurm", "--slurm-shards", "2", "--slurm-cluster", "local", "--cpus-per-task", "1"]
    one, arr = tmp_path / "one", tmp_path / "arr"
    _main("vissl_ext.video.extract_cli", [*videos, one, *ex])

    # shard 1 is killed (SIGKILL, injected by tests/fault_injection/ into the submitit task) after
    # its work, before it marks itself done: reported, nothing merged
    s = _main("vissl_ext.video.extract_cli", [*videos, arr, *ex, *slurm], env=fault_injection_env(kill_shard=1))
    assert s["ok"] is False and s["submitted"] == [0, 1] and [f["shard"] for f in s["failed"]] == [1]
    assert os.path.isfile(s["failed"][0]["stderr"]) and "merged" not in s
    # rerun: only shard 1 goes again, then the merge writes the manifest
    s = _main("vissl_ext.video.extract_cli", [*videos, arr, *ex, *slurm])
    assert s["ok"] is True and s["already_done"] == 1 and s["submitted"] == [1] and s["merged"]["videos"] == 2
    assert _frames(arr) == _frames(one) and len(_frames(one)) == 16
    m1, m2 = load_manifest(str(one / "manifest.json")), load_manifest(str(arr / "manifest.json"))
    assert [(e.id, e.num_frames, e.frames) for e in m1] == [(e.id, e.num_frames, e.frames) for e in m2]
    # a third run has nothing to submit
    s = _main("vissl_ext.video.extract_cli", [*videos, arr, *ex, *slurm])
    assert s["ok"] is True and s["submitted"] == [] and s["already_done"] == 2

    # proposals: per-video caches equal to one process's, merged summary adds the shards up
    pp = ["--ss-short-side", "96", "--top-r", "20", "--no-progress"]
    _main("vissl_ext.tracking.propose_cli", [one / "manifest.json", one / "props", *pp])
    s = _main("vissl_ext.tracking.propose_cli", [arr / "manifest.json", arr / "props", *pp, *slurm])
    assert s["ok"] is True and s["merged"]["frames"] == 16 and s["merged"]["processed"] == 2
    merged = json.loads((arr / "props" / "summary.json").read_text())
    assert merged["frames"] == 16 and sorted(merged["shards"]) == ["0/2", "1/2"]
    for vid in ("bag", "cup"):
        a, b = load_proposals(str(one / "props" / f"{vid}.npz")), load_proposals(str(arr / "props" / f"{vid}.npz"))
        assert all(np.array_equal(x, y) for x, y in zip(a.boxes, b.boxes)) and sum(map(len, a.boxes)) > 16

    # tracks (random-init trunk, fixed seed): the merged index lists both videos, tracks equal
    tp = ["--checkpoint", "random", "--input-short-side", "64", "--batch-size", "8", "--no-progress"]
    _main("vissl_ext.tracking.track_cli", [one / "manifest.json", one / "props", one / "tracks", *tp])
    s = _main("vissl_ext.tracking.track_cli", [arr / "manifest.json", arr / "props", arr / "tracks", *tp, *slurm])
    assert s["ok"] is True and s["merged"]["videos_in_index"] == 2
    for vid in ("bag", "cup"):
        a = json.loads((one / "tracks" / "videos" / f"{vid}.json").read_text())
        b = json.loads((arr / "tracks" / "videos" / f"{vid}.json").read_text())
        assert a["tracks"] == b["tracks"] and len(a["tracks"]) > 0


def test_slurm_route_user_errors(tmp_path):
    from vissl_ext.video.extract_cli import main

    video = shared_path("video_opencv", "cup.mp4")
    assert main([video, str(tmp_path / "o"), "--slurm"]) == 2  # no --partition
    assert main([video, str(tmp_path / "o"), "--slurm", "--slurm-cluster", "local", "--shard", "0/2"]) == 2
    assert not (tmp_path / "o" / "slurm").exists()


@pytest.mark.parametrize("option,value,says", [
    ("--time-hours", "-1", "--time-hours must be a positive number of hours, got -1.0"),
    ("--time-hours", "nan", "--time-hours must be a positive number of hours, got nan"),
    ("--time-hours", "inf", "--time-hours must be a positive number of hours, got inf"),  # was an OverflowError
    ("--cpus-per-task", "0", "--cpus-per-task must be >= 1, got 0"),
    ("--mem-gb", "0", "--mem-gb must be >= 1, got 0"),
    ("--gpus-per-task", "-1", "--gpus-per-task must be >= 0, got -1"),
    ("--array-parallelism", "0", "--array-parallelism must be >= 1, got 0"),  # was accepted
])
def test_bad_slurm_option_values_are_one_error_line(tmp_path, capsys, option, value, says):
    from vissl_ext.video.extract_cli import main

    video = shared_path("video_opencv", "cup.mp4")
    assert main([video, str(tmp_path / "o"), "--slurm", "--slurm-cluster", "local", option, value]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: {says}"
    assert not (tmp_path / "o" / "slurm").exists()  # nothing submitted


def test_time_limit_rounds_up_to_whole_minutes():
    from vissl_ext.cli.shard_jobs import timeout_minutes

    # int(0.001 h * 60) was 0, which SLURM reads as "no time limit"
    assert [timeout_minutes(h) for h in (0.001, 1 / 60, 0.5, 24)] == [1, 1, 30, 1440]


def test_rerun_with_other_settings_is_refused_before_any_job(tmp_path, capsys):
    """Outputs finished with other settings used to make every resubmitted task fail in its log
    (and 'rerun the same command' failed again); now one error line before submitting."""
    from vissl_ext.video.extract_cli import main as extract
    from vissl_ext.tracking.propose_cli import main as propose

    video = shared_path("video_opencv", "cup.mp4")
    out = tmp_path / "o"
    ex = ["--stride", "6", "--short-side", "64", "--no-progress"]
    slurm = ["--slurm", "--slurm-shards", "2", "--slurm-cluster", "local", "--cpus-per-task", "1"]
    assert extract([video, str(out), "--max-frames", "2", *ex]) == 0
    assert extract([video, str(out), "--max-frames", "3", *ex, *slurm]) == 2
    assert "was extracted with other settings" in capsys.readouterr().err
    assert not (out / "slurm").exists()

    pp = ["--ss-short-side", "64", "--no-progress"]
    assert propose([str(out / "manifest.json"), str(tmp_path / "p"), "--top-r", "5", *pp]) == 0
    assert propose([str(out / "manifest.json"), str(tmp_path / "p"), "--top-r", "6", *pp, *slurm]) == 2
    assert "was made with other settings" in capsys.readouterr().err
    assert not (tmp_path / "p" / "slurm").exists()


def test_each_tool_keeps_its_own_markers(tmp_path):
    """detect_shots runs on extract_frames' output folder: with one <out>/slurm/ for both, each
    tool's markers made the other resubmit every shard ('written by another command line')."""
    from vissl_ext.cli.shard_jobs import marker_path

    paths = {m: marker_path(str(tmp_path), 0, 2, m) for m in ("vissl_ext.video.extract_cli", "vissl_ext.video.shot_cli",
                                                                "vissl_ext.tracking.propose_cli",
                                                                "vissl_ext.tracking.track_cli")}
    assert len(set(paths.values())) == 4
    assert paths["vissl_ext.video.shot_cli"] == str(tmp_path / "slurm" / "shot" / "done_0-of-2.json")


@pytest.mark.slow
def test_detect_shots_beside_extract_frames_does_not_resubmit_it(tmp_path):
    from vissl_ext.video.shot_cli import parse_args as shot_args, run as shot_run

    video = shared_path("video_opencv", "cup.mp4")
    ex = ["--stride", "6", "--max-frames", "3", "--short-side", "64", "--no-progress"]
    slurm = ["--slurm", "--slurm-shards", "2", "--slurm-cluster", "local", "--cpus-per-task", "1"]
    assert _main("vissl_ext.video.extract_cli", [video, tmp_path, *ex, *slurm])["ok"]
    s = shot_run(shot_args([str(tmp_path / "manifest.json"), "--no-progress", *slurm]))
    assert s["ok"] and s["submitted"] == [0, 1]
    s = _main("vissl_ext.video.extract_cli", [video, tmp_path, *ex, *slurm])  # resubmitted both shards before
    assert s["ok"] and s["submitted"] == [] and s["already_done"] == 2


@pytest.mark.slow
def test_no_wait_submits_exits_zero_and_the_rerun_merges(tmp_path, capsys):
    """--slurm-no-wait: the submission worked, so exit code 0 (scripts chain on it), nothing
    merged yet; once the tasks end, the same command merges without submitting again."""
    import time

    from vissl_ext.video.extract_cli import main
    from vissl_ext.cli.shard_jobs import marker_path

    video = shared_path("video_opencv", "cup.mp4")
    out = tmp_path / "o"
    argv = [video, str(out), "--stride", "10", "--max-frames", "4", "--short-side", "64", "--no-progress",
            "--slurm", "--slurm-shards", "2", "--slurm-cluster", "local", "--cpus-per-task", "1"]
    assert main([*argv, "--slurm-no-wait"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["waiting"] is True and s["submitted"] == [0, 1] and "merged" not in s
    assert not (out / "manifest.json").exists()
    deadline = time.time() + 120
    while not all(os.path.exists(marker_path(str(out), i, 2, "vissl_ext.video.extract_cli")) for i in range(2)):
        assert time.time() < deadline, "the local array tasks did not finish"
        time.sleep(0.5)
    assert main(argv) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["submitted"] == [] and s["already_done"] == 2 and s["merged"]["videos"] == 1
    assert (out / "manifest.json").exists()


def _extract_argv(video, out):
    return [video, str(out), "--stride", "10", "--max-frames", "4", "--short-side", "64", "--no-progress",
            "--slurm", "--slurm-shards", "2", "--slurm-cluster", "local", "--cpus-per-task", "1"]


def _wait_for(cond, what, timeout=90):
    import time

    deadline = time.time() + timeout
    while not cond():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class _OnLog(logging.Handler):
    """Runs ``action`` once a log message containing ``text`` is emitted."""

    def __init__(self, text, action):
        super().__init__()
        self.text, self.action = text, action

    def emit(self, record):
        if self.text in record.getMessage():
            self.action()


@pytest.mark.slow
def test_rerun_while_a_shard_runs_does_not_submit_it_again(tmp_path):
    """A rerun while a shard's job still runs used to see no marker and submit the shard again
    (double compute, two tasks writing its outputs). Shard 1 is held (tests/fault_injection) until
    the test releases it: the --slurm-no-wait rerun lists it as running, the waiting rerun waits for
    it and merges; nothing is submitted twice."""
    from vissl_ext.cli.shard_jobs import marker_path, submitted_path

    mod = "vissl_ext.video.extract_cli"
    out, gate = tmp_path / "o", tmp_path / "release_shard_1"
    argv = _extract_argv(shared_path("video_opencv", "cup.mp4"), out)
    marker = [marker_path(str(out), i, 2, mod) for i in range(2)]
    try:
        s = _main(mod, [*argv, "--slurm-no-wait"], env=fault_injection_env(hold_shard=f"1:{gate}"))
        assert s["ok"] and s["waiting"] and s["submitted"] == [0, 1] and s["running"] == []
        records = json.loads(open(submitted_path(str(out), mod)).read())["shards"]
        assert [records[f"{i}-of-2"]["job_id"] for i in range(2)] == s["job_ids"]
        _wait_for(lambda: os.path.exists(marker[0]), "shard 0's marker")

        s = _main(mod, [*argv, "--slurm-no-wait"])  # shard 1 still runs (held)
        assert s["ok"] is True and s["waiting"] is True and "merged" not in s
        assert s["submitted"] == [] and s["already_done"] == 1 and s["running"] == [1]
        assert s["running_job_ids"] == [records["1-of-2"]["job_id"]] and "[1] still running" in s["message"]
        assert not os.path.exists(marker[1])

        # the waiting rerun: shard 1 is released once the command says it waits for it
        root, on_wait = logging.getLogger(), _OnLog("waiting for 1 shards still running", gate.touch)
        level = root.level
        root.addHandler(on_wait)
        root.setLevel(logging.INFO)
        try:
            s = _main(mod, argv)
        finally:
            root.removeHandler(on_wait)
            root.setLevel(level)
        assert gate.exists()  # it did wait
        assert s["ok"] is True and s["submitted"] == [] and s["running"] == [1] and s["failed"] == []
        assert s["merged"]["videos"] == 1 and (out / "manifest.json").exists()
        assert json.loads(open(submitted_path(str(out), mod)).read())["shards"] == records  # nothing new
        jobs_run = {d for d in os.listdir(out / "slurm" / "extract" / "logs") if d != "%j"}  # %j: submitit's pickles
        assert jobs_run == {r["job_id"] for r in records.values()}
    finally:
        gate.touch()  # never leave a held task behind


@pytest.mark.slow
def test_recorded_job_that_died_without_its_marker_is_submitted_again(tmp_path):
    """A recorded job whose process is gone and left no marker (SIGKILLed before writing it) is
    not 'running': the rerun submits its shard again, records the new job, and merges."""
    from vissl_ext.cli.shard_jobs import local_job_alive, marker_path, submitted_path

    mod = "vissl_ext.video.extract_cli"
    out = tmp_path / "o"
    argv = _extract_argv(shared_path("video_opencv", "cup.mp4"), out)
    s = _main(mod, [*argv, "--slurm-no-wait"], env=fault_injection_env(kill_shard=1))
    assert s["submitted"] == [0, 1]
    old = json.loads(open(submitted_path(str(out), mod)).read())["shards"]
    _wait_for(lambda: os.path.exists(marker_path(str(out), 0, 2, mod))
              and not local_job_alive(old["1-of-2"]["job_id"], old["1-of-2"]["folder"])[0], "the jobs to end")
    assert not os.path.exists(marker_path(str(out), 1, 2, mod))

    s = _main(mod, argv)
    assert s["ok"] is True and s["already_done"] == 1 and s["submitted"] == [1] and s["running"] == []
    assert s["merged"]["videos"] == 1
    new = json.loads(open(submitted_path(str(out), mod)).read())["shards"]
    assert new["0-of-2"] == old["0-of-2"] and new["1-of-2"]["job_id"] == s["job_ids"][0] != old["1-of-2"]["job_id"]


def test_a_pid_that_is_not_a_submitit_job_is_not_alive(tmp_path):
    """Local job ids are PIDs: a PID reused by another program (here: this test) is not the job."""
    from vissl_ext.cli.shard_jobs import local_job_alive

    assert local_job_alive(str(os.getpid()), str(tmp_path / "logs" / "%j")) == (False, "ENDED (its PID is another process now)")
    assert local_job_alive("4194305", str(tmp_path))[0] is False  # above Linux's pid_max


def test_a_slurm_job_sacct_does_not_know_is_not_alive(tmp_path):
    """submitit reports UNKNOWN when sacct fails or does not know the job (here: no SLURM, or an id
    no cluster has): its shard is submitted again rather than waited for forever."""
    from vissl_ext.cli.shard_jobs import _job_alive, _reattach

    record = {"cluster": "slurm", "job_id": "987654321_1", "folder": str(tmp_path / "logs" / "%j")}
    job = _reattach(record)
    assert _job_alive(record, job) == (False, "UNKNOWN")
    assert str(job.paths.stderr) == str(tmp_path / "logs" / "987654321_1" / "987654321_1_0_log.err")


def _submit_no_wait(video, out, result_file, barrier_dir, k):
    """One submitter process: waits until both are ready, then submits without waiting. The
    executor is built 3 s late (patched here, in this process) so that two submitters surely read
    the records before either writes them: the window a lock must close."""
    import time

    from vissl_ext.cli import shard_jobs

    make = shard_jobs.make_executor
    shard_jobs.make_executor = lambda *a, **kw: (time.sleep(3), make(*a, **kw))[1]
    open(os.path.join(barrier_dir, f"ready{k}"), "w").close()
    while len(os.listdir(barrier_dir)) < 2:
        time.sleep(0.05)
    s = _main("vissl_ext.video.extract_cli", [*_extract_argv(video, out), "--slurm-no-wait"])
    with open(result_file, "w") as f:
        json.dump(s, f)


@pytest.mark.slow
def test_two_reruns_at_once_submit_each_shard_once(tmp_path):
    """Two submitters of the same command at the same moment: without the folder's lock both read
    "nothing submitted" and both submitted every shard (and one's records were lost)."""
    import multiprocessing as mp

    from vissl_ext.cli.shard_jobs import _read_submitted, marker_path

    video, out, barrier = shared_path("video_opencv", "cup.mp4"), tmp_path / "o", tmp_path / "barrier"
    barrier.mkdir()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_submit_no_wait, args=(video, out, str(tmp_path / f"s{k}.json"), str(barrier), k))
             for k in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(600)
        assert p.exitcode == 0
    summaries = [json.loads((tmp_path / f"s{k}.json").read_text()) for k in range(2)]
    submitted = sorted(i for s in summaries for i in s["submitted"])
    assert submitted == [0, 1], summaries  # each shard submitted by exactly one of them
    records = _read_submitted(str(out), "vissl_ext.video.extract_cli")
    assert sorted(records) == ["0-of-2", "1-of-2"]
    _wait_for(lambda: all(os.path.exists(marker_path(str(out), i, 2, "vissl_ext.video.extract_cli"))
                          for i in range(2)), "the array tasks", timeout=300)


def test_submission_lock_kind_follows_the_file_system(tmp_path, monkeypatch):
    """A lock file (SoftFileLock) on NFS, where fcntl locks are unreliable; fcntl elsewhere."""
    import builtins
    import io

    from filelock import FileLock, SoftFileLock

    from vissl_ext.cli import shard_jobs

    assert type(shard_jobs.submission_lock(str(tmp_path))) is FileLock or not os.path.isdir("/proc")
    mounts = f"server:/export {tmp_path} nfs4 rw 0 0\n"
    real_open = builtins.open
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: io.StringIO(mounts) if f == "/proc/mounts"
                        else real_open(f, *a, **k))
    lock = shard_jobs.submission_lock(str(tmp_path / "sub"))
    assert type(lock) is SoftFileLock and lock.lock_file == str(tmp_path / "sub" / "submit.lock")
