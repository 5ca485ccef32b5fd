#!/usr/bin/env python
"""ADE20K head training and evaluation with a frozen trunk: images/s, and the share of time spent
outside the trunk's forward pass (data loading, head, loss/backward/optimizer, evaluator).

One process, one run: the trunk's forward time is measured inside the same steps (hooks on the
backbone), so the share compares like with like. Aim: <= 25% outside the trunk.

    python benchmarks/bench_seg.py [--size 0] [--iters 8] [--eval-passes 3] [--workers 1]

By default it measures the shipped recipe: short side drawn from 256..1024, then a 512x512 crop,
evaluation at short side 512. ``--size N`` fixes the short side, crop and test size to N instead.

Uses ../shared/data/ade20k_sceneparsing (3 validation images), ResNet-50, random weights, CPU
unless a GPU is present.
"""
import argparse
import itertools
import json
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import vissl_ext.segmentation  # noqa: E402,F401  (d2 compat fixes first)
import torch  # noqa: E402
from detectron2.evaluation import SemSegEvaluator, inference_on_dataset  # noqa: E402
from detectron2.solver import build_optimizer  # noqa: E402

from vissl_ext.segmentation import ade20k  # noqa: E402
from vissl_ext.segmentation.train import DEFAULT_CONFIG, Trainer, setup_cfg  # noqa: E402


class TrunkTimer:
    """Wall time spent in the backbone's forward (hooks around it)."""

    def __init__(self, backbone, sync):
        self.total, self._t0, self.sync = 0.0, None, sync
        backbone.register_forward_pre_hook(self._pre)
        backbone.register_forward_hook(self._post)

    def _pre(self, *_):
        self.sync()
        self._t0 = time.perf_counter()

    def _post(self, *_):
        self.sync()
        self.total += time.perf_counter() - self._t0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.path.join(os.path.dirname(REPO), "shared", "data", "ade20k_sceneparsing"))
    p.add_argument("--size", type=int, default=0,
                   help="0: the config's multi-scale training and test sizes; N: short side, crop and test size N")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--iters", type=int, default=8, help="timed training iterations (after 2 warm-up)")
    p.add_argument("--eval-passes", type=int, default=3, help="evaluation passes over the images (after 1 warm-up)")
    p.add_argument("--workers", type=int, default=1)
    args = p.parse_args()
    if not os.path.isdir(args.data):
        sys.exit(f"{args.data}: not found (pass --data ADEChallengeData2016)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    tmp = tempfile.mkdtemp(prefix="bench_seg_")
    ade20k.prepare(args.data, tmp, progress=False)
    ade20k.register(tmp)
    opts = ["MODEL.DEVICE", device, "DATASETS.TRAIN", '("ade20k_vissl_val",)', "SOLVER.IMS_PER_BATCH", str(args.batch),
            "DATALOADER.NUM_WORKERS", str(args.workers), "OUTPUT_DIR", tmp]
    if args.size:
        s = str(args.size)
        opts += ["INPUT.MIN_SIZE_TRAIN", f"({s},)", "INPUT.CROP.SIZE", f"({s}, {s})", "INPUT.MIN_SIZE_TEST", s]
    cfg = setup_cfg(DEFAULT_CONFIG, opts)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = Trainer.build_model(cfg)
    timer = TrunkTimer(model.backbone, sync)
    optimizer = build_optimizer(cfg, model)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)

    # ---- head training (the loop of detectron2's SimpleTrainer.run_step)
    model.train()
    loader = iter(Trainer.build_train_loader(cfg))  # the training augmentation of real runs
    for _ in range(2):  # warm-up
        losses = sum(model(next(loader)).values())
        optimizer.zero_grad()
        losses.backward()
        optimizer.step()
    timer.total = 0.0
    data_time = 0.0
    sync()
    t0 = time.perf_counter()
    for _ in range(args.iters):
        td = time.perf_counter()
        batch = next(loader)
        data_time += time.perf_counter() - td
        losses = sum(model(batch).values())
        optimizer.zero_grad()
        losses.backward()
        optimizer.step()
    sync()
    train_wall = time.perf_counter() - t0
    train_trunk = timer.total
    train_imgs = args.iters * args.batch

    # ---- evaluation (DefaultTrainer.test's path: test loader, model, SemSegEvaluator)
    model.eval()
    test_loader = Trainer.build_test_loader(cfg, "ade20k_vissl_val")
    evaluator = SemSegEvaluator("ade20k_vissl_val", distributed=False)
    inference_on_dataset(model, test_loader, evaluator)  # warm-up
    timer.total = 0.0

    class Repeat:
        def __len__(self):
            return len(test_loader) * args.eval_passes

        def __iter__(self):
            return itertools.chain.from_iterable(test_loader for _ in range(args.eval_passes))

    sync()
    t0 = time.perf_counter()
    res = inference_on_dataset(model, Repeat(), evaluator)["sem_seg"]
    sync()
    eval_wall = time.perf_counter() - t0
    eval_trunk = timer.total
    eval_imgs = len(test_loader) * args.eval_passes

    out = {
        "device": device, "threads": torch.get_num_threads(), "batch": args.batch,
        "train_short_sides": list(cfg.INPUT.MIN_SIZE_TRAIN), "crop": list(cfg.INPUT.CROP.SIZE),
        "test_short_side": cfg.INPUT.MIN_SIZE_TEST,
        "head_trainable_params": n_params,
        "train_images_per_s": round(train_imgs / train_wall, 3),
        "train_trunk_only_images_per_s": round(train_imgs / train_trunk, 3),
        "train_share_outside_trunk": round(1 - train_trunk / train_wall, 3),
        "train_data_wait_share": round(data_time / train_wall, 3),
        "eval_images_per_s": round(eval_imgs / eval_wall, 3),
        "eval_trunk_only_images_per_s": round(eval_imgs / eval_trunk, 3),
        "eval_share_outside_trunk": round(1 - eval_trunk / eval_wall, 3),
        "eval_mIoU_random_weights": round(float(res["mIoU"]), 3),
    }
    print(json.dumps(out, indent=1))
    ok = out["train_share_outside_trunk"] <= 0.25 and out["eval_share_outside_trunk"] <= 0.25
    print(f"share outside the trunk: train {out['train_share_outside_trunk']:.1%}, "
          f"eval {out['eval_share_outside_trunk']:.1%} (aim <= 25%: {'met' if ok else 'NOT met'})")


if __name__ == "__main__":
    main()
