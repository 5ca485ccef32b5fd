#!/usr/bin/env python
"""Seconds per training step: pretrain/region_tracker against pretrain/frame_temporal, same
trunk (ResNet-50), batch and image size, in one process.

    python benchmarks/bench_train_step.py                       # CPU, batch 8, 224 px
    python benchmarks/bench_train_step.py --device cuda --batch 64

A step is what VISSL's standard train step does for these models: query forward, the momentum
hook (encoder update + key forward), the loss (with queue update), backward, SGD step. The
models are built by VISSL from the two configs; the region model gets --regions region pairs
per image. Steps alternate between the two models so that machine noise hits both alike.
"""
import argparse
import os
import statistics
import sys
import time
from types import SimpleNamespace

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import torch  # noqa: E402

import vissl_ext  # noqa: E402,F401
from vissl_ext.config import compose_config  # noqa: E402


def build(config, device, batch):
    from classy_vision.losses import build_loss
    from vissl.hooks.moco_hooks import MoCoHook
    from vissl.models import build_model

    from vissl_ext.hooks.temporal_contrastive_hook import TemporalContrastiveHook

    _, cfg = compose_config([f"config={config}", "config.MODEL.TRUNK.RESNETS.DEPTH=50"])
    name = cfg.LOSS.name
    lc = dict(cfg.LOSS[name])
    lc["name"] = name
    lc["queue_size"] = 4096
    if name == "temporal_contrastive_loss":
        lc["region_queue_size"] = 4096
        hook = TemporalContrastiveHook(lc["momentum"], shuffle_batch=False)
    else:
        hook = MoCoHook(lc["momentum"], shuffle_batch=False)
    from vissl.utils.hydra_config import AttrDict

    loss = build_loss(AttrDict(lc))  # MoCoLoss reads its settings as attributes
    model = build_model(cfg.MODEL, cfg.OPTIMIZER).to(device)
    loss = loss.to(device)
    task = SimpleNamespace(loss=loss, base_model=model, config=cfg, device=torch.device(device), iteration=0)
    opt = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
    return task, hook, opt


def region_rois(batch, size, per_image, device):
    g = torch.Generator().manual_seed(0)
    rows = []
    for b in range(batch):
        xy = torch.rand(per_image, 2, generator=g) * size * 0.6
        wh = 16 + torch.rand(per_image, 2, generator=g) * size * 0.35
        rows.append(torch.cat([torch.full((per_image, 1), float(b)), xy, xy + wh], 1))
    return torch.cat(rows).to(device)


def step(task, hook, opt, sample):
    task.last_batch = SimpleNamespace(sample=sample)
    out = task.base_model(sample["input"])
    if isinstance(out, list) and len(out) == 1:
        out = out[0]
    hook.on_forward(task)
    loss = task.loss(out, None)
    opt.zero_grad()
    loss.backward()
    opt.step()
    task.iteration += 1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--regions", type=int, default=8, help="region pairs per image (config MAX_REGION_PAIRS)")
    ap.add_argument("--steps", type=int, default=4)
    a = ap.parse_args()
    torch.manual_seed(0)
    dev = a.device
    if not torch.distributed.is_initialized():  # VISSL's MoCo queue gathers even in one process, as its launcher sets up
        backend = "nccl" if dev.startswith("cuda") else "gloo"  # gloo gathers no CUDA tensors
        torch.distributed.init_process_group(backend, init_method="tcp://127.0.0.1:29531", rank=0, world_size=1)
    x_q = torch.randn(a.batch, 3, a.size, a.size, device=dev)
    x_k = torch.randn(a.batch, 3, a.size, a.size, device=dev)
    rois = region_rois(a.batch, a.size, a.regions, dev)
    samples = {
        "frame_temporal": {"input": x_q, "data_momentum": [x_k]},
        "region_tracker": {"input": x_q, "data_momentum": [x_k], "region_boxes": [rois], "region_boxes_momentum": [rois]},
    }
    runs = {n: build(f"pretrain/{n}", dev, a.batch) for n in samples}
    times = {n: [] for n in samples}
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    for i in range(a.steps + 1):  # the first step of each builds the momentum encoder: not timed
        for n in samples:
            sync()
            t0 = time.perf_counter()
            step(*runs[n], samples[n])
            sync()
            if i:
                times[n].append(time.perf_counter() - t0)
    ft, rt = statistics.median(times["frame_temporal"]), statistics.median(times["region_tracker"])
    print(f"device {dev}, ResNet-50, batch {a.batch}, {a.size} px, {a.regions} region pairs/image, "
          f"median of {a.steps} steps, threads {torch.get_num_threads()}")
    print(f"{'pretrain/frame_temporal':<26}{ft:8.3f} s/step")
    print(f"{'pretrain/region_tracker':<26}{rt:8.3f} s/step")
    print(f"region branch adds {100 * (rt / ft - 1):+.1f}% (aim <= +15%)")


if __name__ == "__main__":
    main()
