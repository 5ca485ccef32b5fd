"""The host's linear-probe benchmarks, configs unchanged, on our checkpoint and Pascal Cropped Boxes:
ImageNet linear (tools/run_distributed_engines.py) and the VOC07 SVM flow (extract features +
train_svm), 2 iterations / a few images on CPU. Each checks that our weights were really loaded."""
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from vissl_ext_testing import compose, run_engine, shared_path

from vissl_ext.downstream.cropped_boxes import build_voc
from vissl_ext.utils.safe_load import torch_load

CLASSES = ["aeroplane", "car", "chair", "person", "train"]  # >= 3 crops each in voc_mmfewshot (3-fold SVM CV)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("probes")
    voc = shared_path("voc_mmfewshot", "VOCdevkit")
    build_voc(voc, str(d / "pcb"), years=["VOC2007", "VOC2012"], splits=["trainval", "test"], classes=CLASSES,
              progress=False)
    from vissl.models import build_model

    torch.manual_seed(0)
    cfg = compose("config=pretrain/tiny/frame_temporal_cpu")
    trunk = build_model(cfg.MODEL, cfg.OPTIMIZER).trunk
    g = torch.Generator().manual_seed(0)
    for m in trunk.modules():  # non-default BN statistics: a reset trunk would show
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    ckpt = d / "model_final_checkpoint_phase0.torch"
    # the layout VISSL's checkpoint hook writes (tests/test_training_runs.py runs the real pretraining)
    torch.save({"classy_state_dict": {"base_model": {"model": {"trunk": trunk.state_dict(), "heads": {}}}},
                "phase_idx": 0, "iteration": 2, "type": "consolidated"}, ckpt)
    return d, ckpt, trunk.eval()


def _data(split_train, split_test, pcb, labels):
    out = []
    for part, split in (("TRAIN", split_train), ("TEST", split_test)):
        out += [f"config.DATA.{part}.DATA_SOURCES=[disk_filelist]", f"config.DATA.{part}.LABEL_SOURCES=[disk_filelist]",
                f"config.DATA.{part}.DATASET_NAMES=[pascal_cropped_boxes]",
                f"config.DATA.{part}.DATA_PATHS=[{pcb}/{split}_images.npy]",
                f"config.DATA.{part}.LABEL_PATHS=[{pcb}/{split}_{labels}.npy]",
                f"config.DATA.{part}.BATCHSIZE_PER_REPLICA=2", f"config.DATA.{part}.COPY_TO_LOCAL_DISK=False"]
    return out + ["config.DATA.NUM_DATALOADER_WORKERS=0", "config.MACHINE.DEVICE=cpu",
                  "config.DISTRIBUTED.NUM_PROC_PER_NODE=1", "config.DISTRIBUTED.BACKEND=gloo"]


@pytest.mark.slow
def test_imagenet_linear_config_trains_two_iterations_on_our_frozen_trunk(setup):
    from vissl_ext.utils.checkpoint_layouts import trunk_from_object

    d, ckpt, trunk = setup
    out = d / "linear"
    rc, log = run_engine([
        "config=benchmark/linear_image_classification/imagenet1k/eval_resnet_8gpu_transfer_in1k_linear",
        f"config.MODEL.WEIGHTS_INIT.PARAMS_FILE={ckpt}", *_data("trainval", "test", d / "pcb", "targets"),
        "config.DATA.TRAIN.DATA_LIMIT=4", "config.DATA.TEST.DATA_LIMIT=4", "config.OPTIMIZER.num_epochs=1",
        # the host's multistep schedule has milestones at epochs 8/16/24: one constant epoch here
        "config.OPTIMIZER.param_schedulers.lr.name=constant", "config.OPTIMIZER.param_schedulers.lr.value=0.01",
        "config.OPTIMIZER.param_schedulers.lr.auto_lr_scaling.auto_scale=false",
        "config.HOOKS.PERF_STATS.MONITOR_PERF_STATS=False", f"config.CHECKPOINT.DIR={out}"], cwd=d)
    assert rc == 0, log[-4000:]
    # the console is quiet (a count of loaded weights); VISSL's full output is in log.txt
    assert re.search(r"trunk: \d+ loaded, 0 missing", log), log[-2000:]
    full = (out / "log.txt").read_text()
    # VISSL logs "Not found: <key>, not initialized" for weights it skips: heads only, never the trunk
    assert "Checkpoint loaded" in full and not re.search(r"Not found:\s+trunk", full)
    final = torch_load(str(out / "model_final_checkpoint_phase0.torch"))
    assert final["iteration"] == 2
    got = trunk_from_object(final).vissl_state()  # a feature-extractor model's base_model._feature_blocks.
    want = {k: v for k, v in trunk.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert set(want) <= set(got)
    for k, v in want.items():  # loaded, and frozen during the linear training
        torch.testing.assert_close(got[k], v, rtol=0, atol=0, msg=k)
    heads = final["classy_state_dict"]["base_model"]["model"]["heads"]
    assert len([k for k in heads if k.endswith("clf.0.weight")]) == 5  # conv1, res2..res5 linear heads


@pytest.mark.slow
def test_voc07_svm_flow_on_pascal_cropped_boxes_with_our_features(setup):
    import torchvision.transforms as T
    from PIL import Image
    from vissl.utils.misc import merge_features

    d, ckpt, trunk = setup
    out = d / "svm"
    cmd = [sys.executable, "-m", "vissl_ext.downstream.train_svm",
           "config=benchmark/linear_image_classification/voc07/eval_resnet_8gpu_transfer_voc07_svm",
           f"config.MODEL.WEIGHTS_INIT.PARAMS_FILE={ckpt}", *_data("trainval", "test", d / "pcb", "labels"),
           "config.MODEL.FEATURE_EVAL_SETTINGS.LINEAR_EVAL_FEAT_POOL_OPS_MAP=[[res5,[AvgPool2d,[[6,6],1,0]]]]",
           "config.SVM.costs.costs_list=[0.1,1.0]", f"config.CHECKPOINT.DIR={out}"]
    p = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, (p.stdout + p.stderr)[-4000:]
    ap = np.load(out / "res5" / "test_ap.npy")
    assert ap.shape[0] == len(CLASSES) and np.all((ap >= 0) & (ap <= 1))
    assert "AP for various layers" in p.stdout + p.stderr

    # The extracted features are our trunk's: recompute a few independently (host transforms).
    feats = merge_features(str(out), "train", "res5")
    paths = np.load(d / "pcb" / "trainval_images.npy")
    labels = np.load(d / "pcb" / "trainval_labels.npy")
    np.testing.assert_array_equal(feats["targets"], labels[feats["inds"]])
    tf = T.Compose([T.Resize(256), T.Resize([224, 224]), T.ToTensor(),
                    T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    pick = [0, len(paths) // 2, len(paths) - 1]
    x = torch.stack([tf(Image.open(paths[feats["inds"][i]]).convert("RGB")) for i in pick])
    with torch.no_grad():
        ref = torch.nn.AvgPool2d(6, 1, 0)(trunk(x, out_feat_keys=["res5"])[0]).flatten(1).numpy()
    np.testing.assert_allclose(feats["features"][pick], ref, rtol=1e-3, atol=1e-4)
