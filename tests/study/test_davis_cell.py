"""The study runner's davis kind on a tiny configuration: a random-init ResNet-50 x label
propagation on four frames of one shared DAVIS sequence at short side 64. The cell's J&F is the
one the masks it wrote give against the annotations, and table3 has its column."""
import os

import pytest
import yaml

from vissl_ext.downstream import davis_data as dd
from vissl_ext.downstream.davis_metrics import score_sequence, summarise
from vissl_ext.study.run_study_cli import parse_args, run
from vissl_ext.study.spec import StudyError, load_study
from vissl_ext_testing import shared_path


def test_davis_cell_scores_its_masks_and_fills_table3(tmp_path):
    root = shared_path("video_davis2016_sample")
    doc = {"models": [{"name": "Random init", "kind": "random", "seed": 0}],
           "evaluations": [{"name": "DAVIS", "kind": "davis", "dataset_root": root,
                            "args": ["--sequences", "car-shadow", "--max-frames", "4", "--short-side", "64"]}]}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    out = tmp_path / "results"
    s = run(parse_args([str(path), "--out", str(out), "--no-progress"]))
    assert s["ok"] and s["done"] == 1, s["failed"]
    res = s["results"][0]
    masks = out / "cells" / "Random_init__DAVIS" / "run" / "car-shadow"
    frames = dd.frame_paths(root, "car-shadow")[:4]
    preds = [dd.read_labels(str(masks / (os.path.basename(f)[:-4] + ".png"))) for f in frames]
    gts = [dd.read_labels(dd.annotation_path(root, "car-shadow", f)) for f in frames]
    direct = summarise({"car-shadow": score_sequence(gts, preds)})
    assert res["metrics"] == {"J&F": pytest.approx(100 * direct["JF_mean"], abs=1e-9)}
    assert res["J"] == pytest.approx(100 * direct["J_mean"]) and res["F"] == pytest.approx(100 * direct["F_mean"])
    table3 = (out / "table3.md").read_text()
    assert "DAVIS J&F" in table3 and f"{res['metrics']['J&F']:.2f}" in table3

    doc["evaluations"][0]["dataset_root"] = str(tmp_path / "no_davis")
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(StudyError, match=r"evaluations\[0\] \(DAVIS\)\.dataset_root: .*no_davis does not exist"):
        load_study(str(path))
