"""RIS features of a torchvision model in shards: ``--shard i/n`` runs merged by the plain
command, and ``--slurm`` array jobs (submitit's LocalExecutor: real processes) with one shard
killed before its marker and resubmitted alone; the merged features and the scores equal a
single-process run's. Random init gives the same weights in every shard; shards of other
weights, truncated shard files and user errors are handled."""
import glob
import json
import os

import numpy as np
import pytest
from PIL import Image

from vissl_ext.cli.common import shard_range
from vissl_ext.invariance.feature_shards import num_batches, shard_rows
from vissl_ext.invariance.manifest import RISEntry, RISManifest
from vissl_ext.invariance.ris_cli import parse_args, run
from vissl_ext_testing import fault_injection_env, run_tool

N = 11  # batches of 4: 4 + 4 + 3; two shards of whole batches, rows 0-3 and 4-10


def _manifest(tmp_path) -> str:
    root = tmp_path / "views"
    root.mkdir()
    rng = np.random.default_rng(0)
    entries = []
    for i in range(N):
        Image.fromarray(rng.integers(0, 255, (20, 28, 3), dtype=np.uint8)).save(root / f"v{i}.png")
        entries.append(RISEntry(str(root / f"v{i}.png"), trajectory=str(i // 4), cls=str(i // 4 % 2)))
    RISManifest(entries, image_size=32).save(str(tmp_path / "m.json"))
    return str(tmp_path / "m.json")


def _argv(manifest, out, *extra, seed=3):
    return ["torchvision", "--manifest", manifest, "--arch", "resnet18", "--no-weights", "--seed", str(seed),
            "--model", "rand", "--out", str(out), "--topk", "5", "--no-chart", "--batch-size", "4",
            "--workers", "0", "--no-progress", *extra]


def _run(argv, env=None):
    old = {k: os.environ.get(k) for k in (env or {})}
    os.environ.update(env or {})
    try:
        return run(parse_args([str(a) for a in argv]))
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.update({k: v})


def _result(out):
    feats = np.load(os.path.join(out, "features_rand__custom_avgpool.npy"))
    rec = json.loads(open(os.path.join(out, "ris_rand__custom.json")).read())
    return feats, rec["scores"], rec["per_class"]


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """One process, the whole manifest: the reference."""
    tmp = tmp_path_factory.mktemp("ris_shards")
    m = _manifest(tmp)
    _run(_argv(m, tmp / "one"))
    return m, tmp, _result(str(tmp / "one"))


def test_shards_are_contiguous_whole_batches_covering_everything():
    for n_items in (0, 1, 7, 11, 100):
        for n in range(1, 9):
            parts = [shard_range(n_items, i, n) for i in range(n)]
            assert [r for p in parts for r in p] == list(range(n_items))
            assert max(map(len, parts)) - min(map(len, parts)) <= 1
        for bs in (1, 3, 4, 32):
            for n in range(1, num_batches(n_items, bs) + 1):
                parts = [shard_rows(n_items, bs, i, n) for i in range(n)]
                assert [r for p in parts for r in p] == list(range(n_items))
                assert all(p.start % bs == 0 and len(p) > 0 for p in parts)


def test_shard_runs_merged_by_the_plain_command(single, caplog):
    m, tmp, (feats, scores, per_class) = single
    out = tmp / "sharded"
    s0 = _run(_argv(m, out, "--shard", "0/2"))
    assert s0["rows"] == [0, 4] and not s0["reused"]
    assert not (out / "features_rand__custom_avgpool.npy").exists() and not (out / "ris_rand__custom.json").exists()
    # a shard file cut short (a killed copy, a full disk) is named, set aside and extracted again
    path = out / "features_rand__custom_avgpool_shards" / "rows_0-of-2.npy"
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size - 100)
    caplog.clear()
    s0 = _run(_argv(m, out, "--shard", "0/2"))
    assert not s0["reused"] and f"{path} does not load" in caplog.text and path.with_name(path.name + ".bad").exists()
    assert path.stat().st_size == size
    assert _run(_argv(m, out, "--shard", "0/2"))["reused"]  # a valid one is reused
    assert _run(_argv(m, out, "--shard", "1/2"))["rows"] == [4, N]
    s = _run(_argv(m, out))  # no --shard: merges the complete set, then scores
    got, got_scores, got_pc = _result(str(out))
    assert np.array_equal(got, feats), np.abs(got - feats).max()  # bit for bit (checked: not just allclose)
    assert got_scores == scores and got_pc == per_class and s["ok"]
    assert not path.exists()  # merged: the shard files are gone, a rerun reuses the merged file


def _error(argv, capsys) -> str:
    """The one error: line of a run that must end with exit code 2."""
    rc, log = run_tool("compute_ris", argv, capsys)
    errors = [line for line in log.splitlines() if line.startswith("error:")]
    assert rc == 2 and len(errors) == 1 and "Traceback" not in log, log
    return errors[0]


def test_missing_shards_and_shards_of_other_weights_are_not_merged(single, capsys):
    m, tmp, _ = single
    out = tmp / "mixed"
    _run(_argv(m, out, "--shard", "0/2"))
    assert "shards [1] of 2 are missing" in _error(_argv(m, out), capsys)
    _run(_argv(m, out, "--shard", "1/2", seed=4))  # same label, another random network
    err = _error(_argv(m, out), capsys)
    assert "cannot merge shard 1/2" in err and "another model" in err
    assert not (out / "features_rand__custom_avgpool.npy").exists()


@pytest.mark.slow
def test_slurm_array_kill_resubmit_merge(single):
    m, tmp, (feats, scores, per_class) = single
    out = tmp / "arr"
    slurm = ["--slurm", "--slurm-shards", "2", "--slurm-cluster", "local", "--cpus-per-task", "1"]
    # shard 1 is killed (SIGKILL, injected by tests/fault_injection/ into the submitit task) after its
    # work, before its marker: reported with its log, nothing merged
    s = _run(_argv(m, out, *slurm), env=fault_injection_env(kill_shard=1))
    assert s["ok"] is False and s["submitted"] == [0, 1] and [f["shard"] for f in s["failed"]] == [1]
    assert os.path.isfile(s["failed"][0]["stderr"]) and "merged" not in s
    assert not (out / "features_rand__custom_avgpool.npy").exists()
    # rerun: only shard 1 goes again (its file, written before the kill, is reused), then merge + score
    s = _run(_argv(m, out, *slurm))
    assert s["ok"] is True and s["already_done"] == 1 and s["submitted"] == [1] and s["merged"]["ok"]
    logs = [open(p).read() for p in glob.glob(str(out / "features_rand__custom_avgpool_shards" / "slurm" / "ris" / "logs"
                                                  / s["job_ids"][0] / "*.err"))]
    assert any("shard 1/2 already extracted, reused" in text for text in logs)
    got, got_scores, got_pc = _result(str(out))
    # same random weights in every shard process (the merge checks each shard's weight fingerprint
    # against this process's model), and the same rows as one process
    assert np.array_equal(got, feats), np.abs(got - feats).max()
    assert got_scores == scores and got_pc == per_class
    s = _run(_argv(m, out, *slurm))  # a third run scores the merged file, submits nothing
    assert s["ok"] is True and "submitted" not in s


@pytest.mark.parametrize("extra, says", [
    (["--shard", "2/2"], "--shard 2/2"), (["--shard", "x"], "i/n"), (["--slurm"], "--partition"),
    (["--slurm", "--slurm-cluster", "local", "--shard", "0/2"], "do not go together"),
    (["--shard", "3/4"], "at most 3 shards"),  # 11 images in batches of 4: 3 batches
    (["--slurm", "--slurm-cluster", "local", "--slurm-shards", "4"], "at most 3 shards"),
    (["--slurm", "--slurm-cluster", "local", "--device", "cuda"], "--gpus-per-task 1")])
def test_user_errors_torchvision(tmp_path, capsys, extra, says):
    m = _manifest(tmp_path)
    assert says in _error(_argv(m, tmp_path / "o", *extra), capsys)
    assert not (tmp_path / "o" / "features_rand__custom_avgpool_shards").exists()


@pytest.mark.parametrize("cmd", [["score", "--features", "f.npy", "--manifest", "m.json"], ["report", "results"]])
@pytest.mark.parametrize("extra", [["--slurm"], ["--shard", "0/2"], ["--shard=0/2"]])
def test_slurm_and_shard_are_refused_for_score_and_report(tmp_path, capsys, cmd, extra):
    argv = [*cmd, *extra] + (["--model", "x", "--out", str(tmp_path)] if cmd[0] == "score" else [])
    rc, log = run_tool("compute_ris", argv, capsys)
    assert rc == 2 and log.strip().splitlines() == [log.strip()] and log.startswith("error: ")
    assert "torchvision" in log


def test_merge_streams_through_a_memory_map(tmp_path):
    """The merge copies block by block between memory maps: its heap never holds the matrix
    (tracemalloc sees numpy's allocations), and the rows land in order."""
    import tracemalloc

    from vissl_ext.invariance import feature_shards as fs

    n_rows, dim, n = 3001, 512, 3
    settings = {"model": "m", "layer": "avgpool", "image_size": 32, "batch_size": 10, "images": "h", "num_images": n_rows}
    want = np.random.default_rng(0).standard_normal((n_rows, dim)).astype(np.float32)

    def extract(path, rows):
        np.save(path, want[rows.start:rows.stop])
        return np.load(path, mmap_mode="r")

    for i in range(n):
        fs.extract_shard(extract, str(tmp_path / "s"), i, n, settings)
    tracemalloc.start()
    got = fs.merge_shards(str(tmp_path / "s"), n, str(tmp_path / "f.npy"), settings, block_rows=100)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.array_equal(got, want) and peak < want.nbytes / 20, peak
