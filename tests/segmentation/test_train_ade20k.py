"""tools/train_ade20k_segmentation.py for a few iterations on real ADE20K files; the evaluator's mIoU
and pixel accuracy checked against a confusion matrix computed independently (sklearn) from the
same predictions and the raw ADE20K label PNGs."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from vissl_ext_testing import REPO, compose, shared_path

from vissl_ext.utils.safe_load import load_pickle, torch_load

if importlib.util.find_spec("detectron2") is None:  # `make test` installs it: a missing one fails, never skips
    raise ImportError("detectron2 is not installed: run `bash scripts/install_detectron2.sh`")

TINY = ["DATASETS.TRAIN", '("ade20k_vissl_val",)', "SOLVER.MAX_ITER", "2", "SOLVER.IMS_PER_BATCH", "2",
        "SOLVER.WARMUP_ITERS", "1", "INPUT.MIN_SIZE_TRAIN", "(128,)", "INPUT.CROP.SIZE", "(128, 128)",
        "INPUT.MIN_SIZE_TEST", "128", "DATALOADER.NUM_WORKERS", "0", "SOLVER.CHECKPOINT_PERIOD", "100"]


def _vissl_checkpoint(path):
    from vissl.models import build_model

    torch.manual_seed(0)
    cfg = compose("config=pretrain/tiny/frame_temporal_cpu")
    trunk = build_model(cfg.MODEL, cfg.OPTIMIZER).trunk
    torch.save({"classy_state_dict": {"base_model": {"model": {"trunk": trunk.state_dict(), "heads": {}}}}}, path)


def _independent_metrics(records, ade_root, num_classes=150):
    from sklearn.metrics import confusion_matrix

    conf = np.zeros((num_classes, num_classes), np.int64)
    for file_name, pred in records:
        stem = os.path.splitext(os.path.basename(file_name))[0]
        raw = np.asarray(Image.open(os.path.join(ade_root, "annotations", "validation", stem + ".png"))).astype(int)
        assert raw.shape == pred.shape
        valid = raw > 0  # ADE20K 0 = "other objects": not evaluated
        conf += confusion_matrix(raw[valid] - 1, pred[valid], labels=np.arange(num_classes))
    tp = np.diag(conf).astype(float)
    union = conf.sum(0) + conf.sum(1) - tp
    miou = np.mean(tp[union > 0] / union[union > 0])
    return 100 * miou, 100 * tp.sum() / conf.sum()


@pytest.mark.slow
def test_train_few_iterations_frozen_trunk_and_metrics_match_confusion_matrix(tmp_path):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.evaluation import DatasetEvaluator, DatasetEvaluators, SemSegEvaluator, inference_on_dataset

    from vissl_ext.segmentation import ade20k
    from vissl_ext.segmentation.train import Trainer, setup_cfg

    ade_root = shared_path("ade20k_sceneparsing", "ADEChallengeData2016")
    ckpt = tmp_path / "model_final_checkpoint_phase0.torch"
    _vissl_checkpoint(ckpt)
    out, prep = tmp_path / "out", tmp_path / "prep"
    cmd = [sys.executable, os.path.join(REPO, "tools", "train_ade20k_segmentation.py"), "--dataset-root", ade_root,
           "--prepared-dir", str(prep), "--weights", str(ckpt), "--no-progress", "OUTPUT_DIR", str(out), *TINY]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    log = p.stdout + p.stderr
    assert p.returncode == 0, log[-4000:]
    assert "trunk check: 265 backbone tensors equal to" in log  # ResNet-50 stem..res5: 53 convs x (w + 4 norm)
    reported = json.load(open(out / "results.json"))["sem_seg"]

    # frozen trunk: after training the backbone still equals the converted VISSL trunk
    # (read with the safe loaders: what the project writes must load without full pickle)
    final = torch_load(str(out / "model_final.pth"))["model"]
    converted = load_pickle(str(out / "trunk_d2.pkl"))["model"]
    for k, v in converted.items():
        torch.testing.assert_close(final["backbone." + k], torch.as_tensor(v), rtol=0, atol=0)

    # evaluate the trained model again, recording the predictions the evaluator sees
    class Recorder(DatasetEvaluator):
        def reset(self):
            self.records = []

        def process(self, inputs, outputs):
            for i, o in zip(inputs, outputs):
                self.records.append((i["file_name"], o["sem_seg"].argmax(0).numpy()))

        def evaluate(self):
            return {}

    cfg = setup_cfg(str(out / "config.yaml"))
    ade20k.register(str(prep))
    model = Trainer.build_model(cfg).eval()
    DetectionCheckpointer(model).load(str(out / "model_final.pth"))
    sem, rec = SemSegEvaluator("ade20k_vissl_val", distributed=False), Recorder()
    res = inference_on_dataset(model, Trainer.build_test_loader(cfg, "ade20k_vissl_val"),
                               DatasetEvaluators([sem, rec]))["sem_seg"]
    assert len(rec.records) == 3
    miou, pacc = _independent_metrics(rec.records, ade_root)
    assert res["mIoU"] == pytest.approx(miou, rel=1e-9) and res["pACC"] == pytest.approx(pacc, rel=1e-9)
    # the tool's own evaluation (same weights, same inputs) reported the same numbers
    assert reported["mIoU"] == pytest.approx(miou, rel=1e-6) and reported["pACC"] == pytest.approx(pacc, rel=1e-6)

    # DDP: two CPU (gloo) processes shard the images and gather the confusion matrices
    out2 = tmp_path / "eval2"
    cmd2 = [sys.executable, os.path.join(REPO, "tools", "train_ade20k_segmentation.py"), "--dataset-root", ade_root,
            "--prepared-dir", str(prep), "--eval-only", "--num-gpus", "2", "--no-progress", "OUTPUT_DIR", str(out2),
            "MODEL.WEIGHTS", str(out / "model_final.pth"), *TINY]
    p2 = subprocess.run(cmd2, capture_output=True, text=True, timeout=900)
    assert p2.returncode == 0, (p2.stdout + p2.stderr)[-4000:]
    assert "World size: 2" in p2.stdout + p2.stderr
    two = json.load(open(out2 / "results.json"))["sem_seg"]
    assert two["mIoU"] == pytest.approx(miou, rel=1e-6) and two["pACC"] == pytest.approx(pacc, rel=1e-6)
