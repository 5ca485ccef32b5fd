"""The online monitor (vissl_ext/hooks/monitor_hook.py) without a training run: its config and
preflight, monitor.jsonl, its schedule, its metric registry, and its numbers under 1 and 2 gloo
processes. Real runs: tests/hooks/test_monitor_runs.py."""
import json
import os

import numpy as np
import pytest
import torch

from vissl_ext.engines.launcher import main
from vissl_ext.hooks.monitor_hook import MonitorHook, MonitorMetric, monitor_cfg
from vissl_ext.registry import monitor_metrics, register_monitor_metric
from vissl_ext.utils.atomic_io import append_jsonl, read_jsonl
from vissl_ext_ddp import monitor_evaluation, run_ranks
from vissl_ext_testing import compose, monitor_sets, one_error_line

TINY = "config=pretrain/tiny/frame_temporal_cpu"


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    return monitor_sets(tmp_path_factory.mktemp("monitor_sets"))


def on(train, val, manifest):
    return ["config.MONITOR.ENABLED=true", f"config.MONITOR.KNN.TRAIN={train}", f"config.MONITOR.KNN.VAL={val}",
            f"config.MONITOR.RIS.MANIFEST={manifest}"]



@pytest.mark.parametrize("override,message", [
    ("config.MONITOR.EVERY_N_EPOCH=2", "did you mean `EVERY_N_EPOCHS`?"),
    ("+config.MONITOR.KNN.TRIAN=/x", "did you mean `TRAIN`?"),
    ("config.MONITOR.KNN.TEMPERATURE=0", "config.MONITOR.KNN.TEMPERATURE must be a number"),
    ("config.MONITOR.RIS.TOPK=[0]", "config.MONITOR.RIS.TOPK must be a list of integers"),
    ("config.MONITOR.BATCHSIZE=0", "config.MONITOR.BATCHSIZE must be an integer >= 1"),
    ("config.MONITOR.CACHE_MB=-1", "config.MONITOR.CACHE_MB must be an integer >= 0"),
    ("config.MONITOR.KNN.VAL=", "config.MONITOR.KNN.VAL is empty"),
])
def test_config_errors_name_the_key(capsys, tmp_path, monkeypatch, sets, override, message):
    monkeypatch.chdir(tmp_path)
    assert message in one_error_line(capsys, [TINY, *on(*sets), override])


def test_enabled_without_any_set_is_an_error(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    line = one_error_line(capsys, [TINY, "config.MONITOR.ENABLED=true"])
    assert "no evaluation set is named" in line and "config.MONITOR.RIS.MANIFEST" in line


def test_bad_monitor_paths_fail_in_the_preflight(capsys, tmp_path, monkeypatch, sets, video_frames_dir):
    """A bad path is one error: line naming the key, exit 2, before any worker starts."""
    monkeypatch.chdir(tmp_path)
    train, val, manifest = sets
    run = [TINY, f"config.DATA.TRAIN.DATA_PATHS=[{video_frames_dir}/manifest.json]"]
    line = one_error_line(capsys, [*run, *on(tmp_path / "no_such_folder", val, manifest)])
    assert line.startswith("error: config.MONITOR.KNN.TRAIN:") and "no_such_folder does not exist" in line
    line = one_error_line(capsys, [*run, *on(train, val, tmp_path / "missing.json")])
    assert line.startswith("error: config.MONITOR.RIS.MANIFEST:") and "missing.json" in line
    # a manifest whose images moved, and one with a single class (RIS could never score it)
    m = json.load(open(manifest))
    moved = dict(m, entries=[dict(e, image=os.path.join(os.path.dirname(manifest), e["image"]) + ".gone")
                             for e in m["entries"]])
    json.dump(moved, open(tmp_path / "moved.json", "w"))
    assert "lists 40 missing images" in one_error_line(capsys, [*run, *on(train, val, tmp_path / "moved.json")])
    one = dict(m, entries=[dict(e, image=os.path.join(os.path.dirname(manifest), e["image"]), **{"class": "a"})
                           for e in m["entries"]])
    json.dump(one, open(tmp_path / "one.json", "w"))
    assert "RIS needs 2 or more" in one_error_line(capsys, [*run, *on(train, val, tmp_path / "one.json")])
    # a validation class the training set lacks
    os.makedirs(tmp_path / "val" / "zebra")
    os.symlink(os.path.join(val, "car-shadow", sorted(os.listdir(os.path.join(val, "car-shadow")))[0]),
               tmp_path / "val" / "zebra" / "z.jpg")
    assert "classes ['zebra']" in one_error_line(capsys, [*run, *on(train, tmp_path / "val", manifest)])
    # the monitor switched off: its paths are not the run's business
    assert main([TINY, *on(tmp_path / "no_such_folder", val, manifest), "config.MONITOR.ENABLED=false",
                 "config.DATA.TRAIN.DATA_PATHS=[/nonexistent]"]) == 2
    assert "config.DATA.TRAIN.DATA_PATHS" in capsys.readouterr().err


def test_vissl_filelists_are_read_like_folders(tmp_path, sets):
    from vissl_ext.data.image_sets import load_labelled_images

    folder = load_labelled_images(sets[0])
    np.save(tmp_path / "train_images.npy", np.array(folder.paths))
    np.save(tmp_path / "train_labels.npy", folder.labels)
    for spec in (str(tmp_path / "train_images.npy"), [str(tmp_path / "train_images.npy"), str(tmp_path / "train_labels.npy")]):
        fl = load_labelled_images(spec)
        assert fl.paths == folder.paths and (fl.labels == folder.labels).all() and len(set(fl.labels)) == 2


def test_jsonl_survives_a_cut_line(tmp_path):
    path = str(tmp_path / "monitor.jsonl")
    append_jsonl(path, [{"iteration": 2, "metric": "a", "value": 1.0}])
    with open(path, "a") as f:
        f.write('{"iteration": 4, "metric": "a", "val')  # a kill in the middle of a write
    assert [r["iteration"] for r in read_jsonl(path)] == [2]
    append_jsonl(path, [{"iteration": 4, "metric": "a", "value": 2.0}, {"iteration": 4, "metric": "b", "value": 3.0}])
    assert [(r["iteration"], r["metric"]) for r in read_jsonl(path)] == [(2, "a"), (4, "a"), (4, "b")]
    assert read_jsonl(str(tmp_path / "absent.jsonl")) == []


def test_schedule(sets):
    from types import SimpleNamespace

    cfg = compose(TINY, *on(*sets), "config.MONITOR.EVERY_N_EPOCHS=2")
    hook = MonitorHook(monitor_cfg(cfg))
    task = SimpleNamespace(max_iteration=30, num_epochs=5)  # 6 iterations per epoch
    assert [i for i in range(31) if hook.due(task, i)] == [0, 12, 24, 30]
    hook.m["EVERY_N_ITERATIONS"], hook.m["EVERY_N_EPOCHS"] = 5, 0
    assert [i for i in range(1, 31) if hook.due(task, i)] == [5, 10, 15, 20, 25, 30]


def test_other_projects_register_a_metric(tmp_path, sets):
    """A metric registered with the decorator gets its config section (validated, with
    did-you-mean) and is scored by the hook with the features of the sets it names."""
    from types import SimpleNamespace

    from vissl.models import build_model

    from vissl_ext.config import ConfigError
    from vissl_ext.hooks.monitor_hook import ImageSet, load_rgb, square_resize_transform

    @register_monitor_metric("FEATURE_NORM")
    class FeatureNorm(MonitorMetric):
        defaults = {"FOLDER": ""}

        def enabled(self, s):
            return bool(s["FOLDER"])

        def image_sets(self, s, image_size):
            files = sorted(os.path.join(s["FOLDER"], f) for f in os.listdir(s["FOLDER"]))
            return {"images": ImageSet(files, load_rgb, square_resize_transform(image_size or 32))}

        def score(self, s, feats, sets):
            return {"mean_norm": float(feats["images"].norm(dim=1).mean())}

    try:
        folder = os.path.join(sets[0], "car-shadow")
        with pytest.raises(ConfigError, match="did you mean `FOLDER`"):
            compose(TINY, "config.MONITOR.ENABLED=true", f"+config.MONITOR.FEATURE_NORM.FOLDR={folder}")
        cfg = compose(TINY, "config.MONITOR.ENABLED=true", f"+config.MONITOR.FEATURE_NORM.FOLDER={folder}")
        hook = MonitorHook(monitor_cfg(cfg))
        assert [n for n, _ in hook.metrics] == ["FEATURE_NORM"]
        torch.manual_seed(0)
        model = build_model(cfg.MODEL, cfg.OPTIMIZER)
        task = SimpleNamespace(base_model=model, checkpoint_folder=str(tmp_path), iteration=0, max_iteration=2,
                               num_epochs=1, hooks=[], train=True)
        hook.on_start(task)
        task.iteration = 2
        (rec,) = hook.evaluate(task)
        assert rec["metric"] == "mean_norm" and rec["value"] > 0 and rec["iteration"] == 2 and rec["epoch"] == 1
        assert read_jsonl(str(tmp_path / "monitor.jsonl")) == [rec]
    finally:
        monitor_metrics().pop("FEATURE_NORM")


def test_same_numbers_under_one_and_two_gloo_processes(tmp_path, sets):
    """Batches of 8 over 20 + 20 + 40 images: 2 ranks encode 3 + 3 + 5 batches between them, rank 0
    scores with rank 0's BN statistics; the numbers are those of one process, a second evaluation
    from the kept views gives them again, and each trunk is back in train mode with its own
    statistics."""
    runs = {}
    for world in (1, 2):
        d = tmp_path / f"world{world}"
        d.mkdir()
        runs[world] = run_ranks(monitor_evaluation, d, world_size=world, args=(*sets, str(d)))
    one, two = runs[1][0], runs[2][0]
    assert one["metrics"] == two["metrics"] == ["knn_top1", "ris_top10", "ris_top25"]
    assert torch.equal(one["values"], two["values"]), (one["values"], two["values"])
    # the second evaluation encodes the views the first decoded and kept: the same numbers
    assert all(torch.equal(r[0]["values"], r[0]["again"]) for r in runs.values())
    assert int(one["kept"]) == 11 and int(two["kept"]) + int(runs[2][1]["kept"]) == 11
    assert all(bool(r["train_mode"]) and bool(r["own_buffers"]) for w in runs.values() for r in w)
    assert two["values"][0] >= 50 and two["values"][1] > 0  # the kNN of 2 classes beats chance...
    assert runs[2][1]["metrics"] == []  # ...and only rank 0 scores and writes
    assert [r["iteration"] for r in read_jsonl(str(tmp_path / "world2" / "monitor.jsonl"))] == [2] * 3 + [4] * 3


def test_eval_views_equal_torchvisions_to_tensor_and_normalize(sets):
    """The monitor keeps uint8 views and finishes batches: bit for bit torchvision's float view."""
    import torchvision.transforms as T
    from PIL import Image

    from vissl_ext.hooks.monitor_hook import IMAGENET_MEAN, IMAGENET_STD, center_crop_transform

    img = Image.open(next(os.path.join(r, f) for r, _, fs in sorted(os.walk(sets[0])) for f in sorted(fs))).convert("RGB")
    view = center_crop_transform(40)
    want = T.Compose([T.Resize(46), T.CenterCrop(40), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])(img)
    assert view.view(img).dtype == torch.uint8
    assert torch.equal(view(img), want) and torch.equal(view.finish(torch.stack([view.view(img)] * 2))[1], want)
