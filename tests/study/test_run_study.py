"""tools/run_study.py end to end on real data: two models (random init from a seed, a torchvision
state dict) x two evaluations (RIS on trajectories of real video frames, the host's ImageNet linear
config on Pascal Cropped Boxes), locally; then resume (nothing redone), a failing model reported
without stopping the others, and the unfinished cells run through submitit's LocalExecutor."""
import json
import os
import shutil

import pytest
import torch
import yaml

from vissl_ext.invariance.manifest import load_ris_manifest
from vissl_ext.study.run_study_cli import main, parse_args, run
from vissl_ext.study.spec import StudyError, load_study
from vissl_ext_testing import REPO, extract, shared_path

CPU = ["config.MACHINE.DEVICE=cpu", "config.DISTRIBUTED.BACKEND=gloo", "config.DISTRIBUTED.NUM_PROC_PER_NODE=1",
       "config.DATA.NUM_DATALOADER_WORKERS=0", "config.MULTI_PROCESSING_METHOD=fork",
       "config.HOOKS.PERF_STATS.MONITOR_PERF_STATS=False"]


def _ris_manifest(tmp):
    import subprocess
    import sys

    from PIL import Image

    videos = [shared_path("video_pysot_bag", "bag.avi"), shared_path("video_opencv", "cup.mp4")]
    extract(videos, tmp / "ex", stride=20, max_frames=5)
    data = tmp / "trajectories"
    for v in ("bag", "cup"):
        os.makedirs(data / v)
        for f in sorted(os.listdir(tmp / "ex" / "frames" / v)):
            if f.endswith(".jpg"):
                Image.open(tmp / "ex" / "frames" / v / f).save(data / v / f)
    p = subprocess.run([sys.executable, os.path.join(REPO, "tools", "build_ris_trajectories.py"), "folders", str(data),
                        "--invariance", "video_frames", "--image-size", "64", "--out", str(tmp / "ris.json")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return tmp / "ris.json"


def _linear_overrides(pcb):
    out = []
    for part, split in (("TRAIN", "trainval"), ("TEST", "test")):
        out += [f"config.DATA.{part}.DATA_SOURCES=[disk_filelist]", f"config.DATA.{part}.LABEL_SOURCES=[disk_filelist]",
                f"config.DATA.{part}.DATASET_NAMES=[pascal_cropped_boxes]",
                f"config.DATA.{part}.DATA_PATHS=[{pcb}/{split}_images.npy]",
                f"config.DATA.{part}.LABEL_PATHS=[{pcb}/{split}_targets.npy]",
                f"config.DATA.{part}.BATCHSIZE_PER_REPLICA=2", f"config.DATA.{part}.COPY_TO_LOCAL_DISK=False",
                f"config.DATA.{part}.DATA_LIMIT=4"]
    return out + ["config.OPTIMIZER.num_epochs=1", "config.OPTIMIZER.param_schedulers.lr.name=constant",
                  "config.OPTIMIZER.param_schedulers.lr.value=0.01",
                  "config.OPTIMIZER.param_schedulers.lr.auto_lr_scaling.auto_scale=false"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    from torchvision.models import resnet50

    from vissl_ext.downstream.cropped_boxes import build_voc

    tmp = tmp_path_factory.mktemp("study")
    manifest = _ris_manifest(tmp)
    build_voc(shared_path("voc_mmfewshot", "VOCdevkit"), str(tmp / "pcb"), years=["VOC2007", "VOC2012"],
              splits=["trainval", "test"], classes=["aeroplane", "car", "chair", "person", "train"], progress=False)
    torch.manual_seed(1)
    torch.save(resnet50(weights=None).state_dict(), tmp / "tv_r50.pth")
    doc = {
        "models": [{"name": "Random init", "kind": "random", "seed": 0},
                   {"name": "TV R50", "kind": "torchvision", "weights": "tv_r50.pth"}],  # relative to the file
        "evaluations": [
            {"name": "Frames", "kind": "ris", "manifest": str(manifest),
             "overrides": ["config.DATA.TEST.BATCHSIZE_PER_REPLICA=4", "config.RIS.TOPK=[2,5]",
                           "config.DATA.TEST.TRANSFORMS=[{name: Resize, size: [64, 64]}, {name: ToTensor}]"]},
            {"name": "PCB linear", "kind": "linear",
             "config": "benchmark/linear_image_classification/imagenet1k/eval_resnet_8gpu_transfer_in1k_linear",
             "overrides": _linear_overrides(tmp / "pcb")}],
        "overrides": CPU,
    }
    path = tmp / "study.yaml"
    path.write_text(yaml.safe_dump(doc))
    return tmp, path, doc


@pytest.mark.slow
def test_study_local_resume_failure_and_submitit(study):
    tmp, path, doc = study
    out = tmp / "results"
    s = run(parse_args([str(path), "--out", str(out), "--no-progress"]))
    assert s["ok"] and s["ran"] == 4 and s["done"] == 4 and not s["failed"], s["failed"]
    cells = {(r["model"], r["evaluation"]): r for r in s["results"]}
    # each cell's numbers are those its own run wrote
    for model in ("Random init", "TV R50"):
        ris = cells[(model, "Frames")]
        rec = json.loads(next((out / "cells" / f"{model.replace(' ', '_')}__Frames" / "run").glob("ris_*.json")).read_text())
        assert ris["metrics"] == {f"Top-{k}": v for k, v in rec["scores"].items()} and rec["model"] == model
        lin = cells[(model, "PCB linear")]
        run_dir = out / "cells" / f"{model.replace(' ', '_')}__PCB_linear" / "run"
        tests = [json.loads(x) for x in (run_dir / "metrics.json").read_text().splitlines() if "test_accuracy_list_meter" in x]
        top1 = tests[-1]["test_accuracy_list_meter"]["top_1"]  # the last test pass of the run, read here
        assert lin["all"] == top1 and lin["metrics"]["top-1"] == max(top1.values()) == top1[lin["head"]]
        # DATA_LIMIT=4 test images: an accuracy counts whole images (a loss or a top-5 would not)
        assert all(abs(v / 25 - round(v / 25)) < 1e-6 for v in top1.values()), top1
    # the two models are different networks: their RIS features differ
    from vissl_ext.invariance.features_io import load_features

    n = len(load_ris_manifest(doc["evaluations"][0]["manifest"]).entries)
    fa, fb = (load_features(str(out / "cells" / f"{c}__Frames" / "run" / "features"), num_images=n)
              for c in ("Random_init", "TV_R50"))
    assert fa.shape == fb.shape == (n, 2048) and not (fa == fb).all()
    # the torchvision weights are the ones evaluated: the prepared checkpoint holds them
    ck = torch.load(out / "models" / "TV_R50.torch", map_location="cpu", weights_only=True)
    trunk = ck["classy_state_dict"]["base_model"]["model"]["trunk"]
    assert torch.equal(trunk["_feature_blocks.conv1.weight"], torch.load(tmp / "tv_r50.pth", weights_only=True)["conv1.weight"])
    t1, t3 = (out / "table1.md").read_text(), (out / "table3.md").read_text()
    assert "Frames Top-2" in t1 and "Random init" in t1 and "TV R50" in t1
    assert "PCB linear top-1" in t3 and f"{cells[('TV R50', 'PCB linear')]['metrics']['top-1']:.2f}" in t3
    assert (out / "table1.csv").exists() and (out / "table1.png").stat().st_size > 1000 and (out / "table3.png").exists()

    # resume: nothing is redone
    log = out / "cells" / "Random_init__Frames" / "log.txt"
    before = log.stat().st_mtime_ns
    s = run(parse_args([str(path), "--out", str(out), "--no-progress"]))
    assert s["ran"] == 0 and s["already_done"] == 4 and log.stat().st_mtime_ns == before

    # a model whose weights do not load fails alone; the others' cells are not touched; exit code 1
    bad = tmp / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    doc2 = dict(doc, models=doc["models"] + [{"name": "Broken", "kind": "torchvision", "weights": str(bad)}])
    path2 = tmp / "study2.yaml"
    path2.write_text(yaml.safe_dump(doc2))
    assert main([str(path2), "--out", str(out), "--no-progress"]) == 1
    s = json.loads((out / "study_summary.json").read_text())
    assert [f["cell"] for f in s["failed"]] == ["Broken (model)"] and s["done"] == 4 and "bad.pth" in s["failed"][0]["error"]

    # submitit's LocalExecutor runs the cells not done yet (two removed here), same numbers
    for cell in ("Random_init__Frames", "TV_R50__PCB_linear"):
        shutil.rmtree(out / "cells" / cell)
    doc3 = dict(doc, compute={"backend": "submitit_local", "cpus_per_task": 1})
    path3 = tmp / "study3.yaml"
    path3.write_text(yaml.safe_dump(doc3))
    s = run(parse_args([str(path3), "--out", str(out), "--no-progress"]))
    assert s["ok"] and s["ran"] == 2 and s["already_done"] == 2 and s["backend"] == "submitit_local"
    again = {(r["model"], r["evaluation"]): r for r in s["results"]}
    assert again[("Random init", "Frames")]["metrics"] == cells[("Random init", "Frames")]["metrics"]
    assert list((out / "submitit").iterdir())  # the jobs' own folders


def test_study_file_errors_name_the_entry(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"models": [{"name": "a", "kind": "vissl", "checkpoint": "nope.torch"}],
                                 "evaluations": [{"name": "x", "kind": "ris", "manifest": "m.json"}]}))
    with pytest.raises(StudyError, match=r"models\[0\] \(a\)\.checkpoint: .*nope.torch does not exist"):
        load_study(str(p))
    p.write_text(yaml.safe_dump({"models": [{"name": "a", "kind": "random", "sed": 1}], "evaluations": []}))
    with pytest.raises(StudyError, match=r"unknown keys \['sed'\]"):
        load_study(str(p))
    p.write_text(yaml.safe_dump({"models": [{"name": "a", "kind": "random"}],
                                 "evaluations": [{"name": "x", "kind": "knnn"}]}))
    with pytest.raises(StudyError, match=r"evaluations\[0\]: kind must be one of"):
        load_study(str(p))
    for jobs, backend in ((0, "local"), ("2", "local"), (2, "slurm")):
        p.write_text(yaml.safe_dump({"models": [{"name": "a", "kind": "random"}],
                                     "evaluations": [{"name": "x", "kind": "ris", "manifest": str(p)}],
                                     "compute": {"backend": backend, "jobs": jobs, "partition": "p"}}))
        with pytest.raises(StudyError, match=r"compute.jobs"):
            load_study(str(p))
    p.write_text("models: [\n")
    with pytest.raises(StudyError, match=r"not valid YAML \([^\n]*\)$"):  # one line
        load_study(str(p))
    assert main([str(tmp_path / "missing.yaml"), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_example_study_file_is_valid(tmp_path):
    """configs/study/paper_tables.yaml parses once its example paths exist."""
    doc = yaml.safe_load(open(os.path.join(REPO, "configs", "study", "paper_tables.yaml")))
    for item in doc["models"] + doc["evaluations"]:
        for key in ("checkpoint", "weights", "manifest", "dataset_root"):
            if key in item:
                item[key] = str(tmp_path / os.path.basename(item[key]))
                open(item[key], "w").close()
    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump(doc))
    s = load_study(str(p))
    assert len(s.models) == 6 and [e.kind for e in s.evaluations].count("ris") == 6
    assert s.compute["backend"] == "slurm"


def test_two_runners_sharing_out_train_a_model_once(tmp_path):
    """Two runners (here two threads) reaching one training: the second waits for the first and
    reads its result; the command ran once."""
    import sys
    import threading

    from vissl_ext.study.cells import execute_training

    count = tmp_path / "count"
    script = ("import os, sys, time; open(sys.argv[1], 'a').write('x'); time.sleep(1.5); "
              "os.makedirs('run', exist_ok=True); open('run/model_final_checkpoint_phase0.torch', 'w').write('w')")
    argv = [sys.executable, "-c", script, str(count)]
    got = []
    threads = [threading.Thread(target=lambda: got.append(execute_training(argv, str(tmp_path / "t"), "m")))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert count.read_text() == "x"  # one training, not two
    assert len(got) == 2 and got[0]["checkpoint"] == got[1]["checkpoint"]
