"""The RIS command lines where a user meets them: flat folder + CSV, a refused flat folder,
seeded random init, and single-class advice the CLI can follow."""
import json
import os
import subprocess
import sys

import numpy as np
from PIL import Image

from vissl_ext_testing import REPO

from vissl_ext.invariance.manifest import RISEntry, RISManifest, load_ris_manifest
from vissl_ext.invariance.ris_cli import main as compute_main
from vissl_ext.invariance.trajectories_cli import main as build_main


def _views(root, n=8):
    os.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(os.path.join(root, f"v{i}.png"))


def test_flat_folder_is_refused_then_accepted_with_a_csv(tmp_path, capsys):
    root = str(tmp_path / "views")
    _views(root)
    out = str(tmp_path / "m.json")
    assert build_main(["folders", root, "--out", out]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "--csv labels.csv" in err[0]
    assert not os.path.exists(out)
    rows = ["file,trajectory,class"] + [f"v{i}.png,{'ab'[i // 4]}{i % 2},{'ab'[i // 4]}" for i in range(8)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    assert build_main(["folders", root, "--csv", str(tmp_path / "labels.csv"), "--out", out, "--image-size", "32"]) == 0
    m = load_ris_manifest(out)
    assert [os.path.basename(e.image) for e in m.entries] == [f"v{i}.png" for i in range(8)]
    assert m.trajectories == ["a0", "a1", "a0", "a1", "b0", "b1", "b0", "b1"] and m.classes == ["a"] * 4 + ["b"] * 4


def test_single_class_error_gives_advice_the_cli_can_follow(tmp_path, capsys):
    _views(str(tmp_path))
    m = RISManifest([RISEntry(str(tmp_path / f"v{i}.png"), trajectory=str(i // 4), cls="one") for i in range(8)])
    m.save(str(tmp_path / "m.json"))
    np.save(tmp_path / "f.npy", np.random.default_rng(0).random((8, 16)).astype(np.float32))
    rc = compute_main(["score", "--manifest", str(tmp_path / "m.json"), "--features", str(tmp_path / "f.npy"),
                       "--model", "x", "--out", str(tmp_path / "res"), "--topk", "5"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "at least 2 classes" in err[0]
    assert "tools/build_ris_trajectories.py folders ROOT --csv" in err[0] and "leave classes out" not in err[0]


def test_random_init_is_seeded_and_the_same_in_every_process(tmp_path):
    root = str(tmp_path / "views")
    _views(root, 6)
    m = RISManifest([RISEntry(os.path.join(root, f"v{i}.png"), trajectory=str(i // 3), cls=str(i // 3))
                     for i in range(6)], image_size=32)
    m.save(str(tmp_path / "m.json"))

    def run(out, *extra):
        args = [sys.executable, "tools/compute_ris.py", "torchvision", "--manifest", str(tmp_path / "m.json"),
                "--arch", "resnet18", "--model", "rand", "--out", str(tmp_path / out), "--topk", "5", "--no-chart",
                *extra]
        p = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
        feats = np.load(tmp_path / out / "features_rand__custom_avgpool.npy")
        rec = json.loads((tmp_path / out / "ris_rand__custom.json").read_text())
        return feats, rec, p.stdout + p.stderr

    a, rec, _ = run("a", "--no-weights", "--seed", "3")
    b, _, log = run("b", "--no-weights", "--seed", "3", "--workers", "999")
    np.testing.assert_array_equal(a, b)  # two processes, one seed: the same random network
    assert rec["init"] == "random, seed 3" and rec["arch"] == "resnet18"
    assert f"using {len(os.sched_getaffinity(0))} data-loader workers" in log  # capped at the cores
    from vissl_ext.invariance.torchvision_features import seeded_random_model

    other = seeded_random_model("resnet18", 4).state_dict()["conv1.weight"]
    assert not np.array_equal(other.numpy(), seeded_random_model("resnet18", 3).state_dict()["conv1.weight"].numpy())
