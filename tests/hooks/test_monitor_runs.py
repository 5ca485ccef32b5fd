"""The online monitor and the TensorBoard terms in real training runs (VISSL's launcher, CPU):
the numbers on the run's own checkpoint, every named scalar in the event file, resume, and two
gloo processes. The runs are session fixtures (tests/conftest.py) shared with other tests."""
import json
import os
import re

import numpy as np
import pytest
import torch

from vissl_ext_testing import compose

pytestmark = pytest.mark.slow

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
SIZE = 64


# ---- the same numbers, computed directly from the checkpoint file ---------------------------

def trunk_from(checkpoint, config):
    from vissl.models import build_model

    cfg = compose(f"config={config}")
    model = build_model(cfg.MODEL, cfg.OPTIMIZER)
    ck = torch.load(checkpoint, map_location="cpu", weights_only=True)
    model.trunk.load_state_dict(ck["classy_state_dict"]["base_model"]["model"]["trunk"])
    return model.trunk.eval()


@torch.no_grad()
def features(trunk, images, transform):
    """Pooled res5 features of the images, all in one batch (as the monitor's batch of 64)."""
    from PIL import Image

    x = torch.stack([transform(_crop(Image.open(p).convert("RGB"), box)) for p, box in images])
    return trunk(x, ["res5avg"])[0].flatten(1).numpy()


def _crop(img, box):
    return img if box is None else img.crop((box[0], box[1], box[0] + box[2], box[1] + box[3]))


def folder_images(root):
    classes = sorted(os.listdir(root))
    items = [(os.path.join(root, c, f), i) for i, c in enumerate(classes) for f in sorted(os.listdir(os.path.join(root, c)))]
    return [(p, None) for p, _ in items], np.array([y for _, y in items])


def plain_knn_top1(train, train_labels, val, val_labels, k=20, temperature=0.07):
    """Weighted kNN written out: cosine similarity, the k nearest vote exp(sim / T) for their class."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    val = val / np.linalg.norm(val, axis=1, keepdims=True)
    correct = 0
    for f, y in zip(val, val_labels):
        sim = train @ f
        votes = {}
        for j in np.argsort(-sim, kind="stable")[:k]:
            votes[train_labels[j]] = votes.get(train_labels[j], 0.0) + np.exp(sim[j] / temperature)
        correct += max(votes, key=votes.get) == y
    return 100.0 * correct / len(val_labels)


def direct_numbers(checkpoint, config, sets):
    """kNN top-1 and RIS Top-10/25 of the checkpoint's trunk, without the monitor's code."""
    import torchvision.transforms as T

    from vissl_ext.invariance.ris import compute_ris

    trunk = trunk_from(checkpoint, config)
    knn_view = T.Compose([T.Resize(round(SIZE * 256 / 224)), T.CenterCrop(SIZE), T.ToTensor(), T.Normalize(MEAN, STD)])
    (train, ytr), (val, yva) = folder_images(sets[0]), folder_images(sets[1])
    knn = plain_knn_top1(features(trunk, train, knn_view), ytr, features(trunk, val, knn_view), yva)
    m = json.load(open(sets[2]))
    root = os.path.dirname(sets[2])
    images = [(os.path.join(root, e["image"]), e["box"]) for e in m["entries"]]
    ris_view = T.Compose([T.Resize((SIZE, SIZE)), T.ToTensor(), T.Normalize(MEAN, STD)])
    r = compute_ris(features(trunk, images, ris_view), [e["trajectory"] for e in m["entries"]],
                    [e["class"] for e in m["entries"]])
    return {"knn_top1": knn, "ris_top10": r.scores[10], "ris_top25": r.scores[25]}


def records(ck):
    from vissl_ext.utils.atomic_io import read_jsonl

    return read_jsonl(str(ck / "monitor.jsonl"))


def at(recs, iteration):
    return {r["metric"]: r["value"] for r in recs if r["iteration"] == iteration}


def assert_numbers_match(recs, iteration, checkpoint, config, sets):
    got, want = at(recs, iteration), direct_numbers(checkpoint, config, sets)
    assert set(got) == set(want)
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=1e-4), (k, got[k], want[k])


def scalars(tb_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def monitor_lines(out):
    return [x for x in out.splitlines() if x.startswith("monitor: epoch")]


# ---- runs ----------------------------------------------------------------------------------

def test_region_tracker_run_monitor_tensorboard_then_resume(region_tracker_resumed):
    """2 epochs of one step: the monitor after each, the TensorBoard scalars, then a resume. The
    runs (tests/conftest.py) are shared with tests/test_region_tracker_runs.py's resume test."""
    r = region_tracker_resumed
    ck, sets = r.ck, r.sets
    rc, out = r.first
    assert rc == 0, out[-3000:]
    # console: the TensorBoard folder in the header, one line per evaluation (after epochs 1 and 2)
    assert f"tensorboard: {ck}/tb_logs  (tensorboard --logdir {ck}/tb_logs)" in out.splitlines()
    lines = monitor_lines(out)
    assert [re.match(r"monitor: epoch (\d) iter (\d)  knn_top1 [\d.]+  ris_top10 [\d.]+  ris_top25 [\d.]+  \([\d.]+ s\)$",
                     x).groups() for x in lines] == [("1", "1"), ("2", "2")], out
    recs = r.first_records
    assert sorted((r["iteration"], r["metric"]) for r in recs) == [(i, m) for i in (1, 2) for m in
                                                                    ("knn_top1", "ris_top10", "ris_top25")]
    assert all(set(r) == {"epoch", "iteration", "metric", "value", "seconds"} and r["seconds"] > 0 for r in recs)
    # the final evaluation is that of the final checkpoint, computed without the monitor (the
    # second evaluation encodes the views the first one decoded and kept)
    assert_numbers_match(recs, 2, r.first_final, "pretrain/tiny/region_tracker_cpu", sets)

    # every named scalar is in the event file, read back with tensorboard's reader
    tb = scalars(r.first_tb)
    for tag in ("Losses/frame", "Losses/region", "Losses/total", "Regions/pairs_per_step",
                "Regions/batches_without_regions", "Optimization/learning_rate", "Monitor/knn_top1",
                "Monitor/ris_top10", "Monitor/ris_top25", "Training/Loss"):
        assert tag in tb, (tag, sorted(tb))
    for tag in ("Losses/frame", "Losses/region", "Regions/pairs_per_step", "Optimization/learning_rate"):
        assert [s for s, _ in tb[tag]] == [1, 2], tag
    progress = [re.search(r"^iter (\d)/2 .* frame ([\d.]+)  region ([\d.]+)", x) for x in out.splitlines()]
    progress = [m.groups() for m in progress if m]
    assert len(progress) == 2
    for (it, frame, region), (_, f), (_, g) in zip(progress, tb["Losses/frame"], tb["Losses/region"]):
        assert abs(float(frame) - f) < 1e-4 and abs(float(region) - g) < 1e-4, it
    assert all(v == pytest.approx(0.03) for _, v in tb["Optimization/learning_rate"])
    pairs = [v for _, v in tb["Regions/pairs_per_step"]]
    assert all(v == int(v) and 0 <= v <= 8 * 8 for v in pairs) and sum(pairs) > 0
    final = torch.load(r.first_final, map_location="cpu", weights_only=True)
    without = int(final["classy_state_dict"]["loss"]["num_batches_without_regions"])
    assert tb["Regions/batches_without_regions"][-1] == (2, without)
    assert [(s, pytest.approx(v, abs=1e-5)) for s, v in tb["Monitor/knn_top1"]] == \
        [(i, at(recs, i)["knn_top1"]) for i in (1, 2)]

    # resume: killed after the epoch-1 checkpoint and before its evaluation was written (a cut
    # line left), while iteration 2's evaluation had been written: the rerun evaluates iteration
    # 1 at its start, on the same weights, and does not evaluate iteration 2 again
    rc, out = r.second
    assert rc == 0, out[-3000:]
    assert [x.split("  ")[0] for x in monitor_lines(out)] == ["monitor: epoch 1 iter 1"], out
    again = records(ck)
    assert sorted((r["iteration"], r["metric"]) for r in again) == sorted((r["iteration"], r["metric"]) for r in recs)
    assert at(again, 1) == at(recs, 1) and at(again, 2) == at(recs, 2)


def test_two_gloo_processes_shot_temporal(shot_temporal_two_processes):
    """The monitor inside a 2-process run (each rank encodes half the batches): one line, rank 0's
    records, equal to the numbers of the final checkpoint; the shot term on the dashboard. The run
    (tests/conftest.py) is shared with tests/test_shot_temporal_runs.py's queue checks."""
    tmp_path, rc, out, sets = shot_temporal_two_processes
    ck = tmp_path / "ck"
    assert rc == 0, out[-3000:]
    # VISSL_EXT_VERBOSE=1 (the queue test reads VISSL's lines): our lines come through the log
    lines = [x for x in out.splitlines() if re.search(r"(^|console\.py: +\d+: )monitor: epoch ", x)]
    assert len(lines) == 1 and "batch 4 x 2 processes" in out, out
    recs = records(ck)
    assert sorted(r["metric"] for r in recs) == ["knn_top1", "ris_top10", "ris_top25"] and {r["iteration"] for r in recs} == {2}
    assert_numbers_match(recs, 2, ck / "model_final_checkpoint_phase0.torch", "pretrain/tiny/shot_temporal_cpu", sets)
    tb = scalars(ck / "tb_logs")
    assert {"Losses/frame", "Losses/shot", "Monitor/knn_top1"} <= set(tb)
    assert "Regions/pairs_per_step" not in tb  # no region term in this model
