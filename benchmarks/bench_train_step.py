#!/usr/bin/env python
"""Seconds per training step: pretrain/region_tracker against pretrain/frame_temporal, same
trunk (ResNet-50), batch and image size, in one process, in fp32, with mixed precision (AMP) and
with AMP + channels_last.

    python benchmarks/bench_train_step.py                                   # CPU: AMP is bf16 autocast
    python benchmarks/bench_train_step.py --device cuda --batch 64          # GPU: fp16 autocast + GradScaler, as VISSL
    python benchmarks/bench_train_step.py --variants fp32                   # the fp32 comparison alone
    python benchmarks/bench_train_step.py --embedding pool_then_project     # the paper's region embedding

A step is what VISSL's standard train step does for these models: query forward, the momentum
hook (encoder update + key forward), the loss (with queue update), backward, optimizer step; under
AMP the first three run in autocast (torch.autocast, as VISSL's torch.cuda.amp.autocast with
AMP_TYPE=pytorch) and, on CUDA, the loss is scaled by a GradScaler. channels_last:
config.MODEL.TRUNK.CHANNELS_LAST=true for the region model; VISSL's plain resnet trunk has no
such key, so the frame model is converted here the same way. The models are built by VISSL from
the configs; the region model gets --regions region pairs per image. Steps alternate between all
runs so that machine noise hits them alike.
"""
import argparse
import contextlib
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

MODELS = ("frame_temporal", "region_tracker")
VARIANTS = {"fp32": (False, False), "amp": (True, False), "amp_channels_last": (True, True)}


def build(name, device, variant, embedding):
    from classy_vision.losses import build_loss
    from vissl.hooks.moco_hooks import MoCoHook
    from vissl.models import build_model
    from vissl.utils.hydra_config import AttrDict

    from vissl_ext.hooks.temporal_contrastive_hook import TemporalContrastiveHook

    amp, channels_last = VARIANTS[variant]
    overrides = [f"config=pretrain/{name}", "config.MODEL.TRUNK.RESNETS.DEPTH=50"]
    if name == "region_tracker":
        overrides.append(f"config.MODEL.HEAD.PARAMS.1.1.embedding={embedding}")
        if channels_last:
            overrides.append("config.MODEL.TRUNK.CHANNELS_LAST=true")
    _, cfg = compose_config(overrides)
    loss_name = cfg.LOSS.name
    lc = dict(cfg.LOSS[loss_name])
    lc["name"] = loss_name
    lc["queue_size"] = 4096
    if loss_name == "temporal_contrastive_loss":
        lc["region_queue_size"] = 4096
        hook = TemporalContrastiveHook(lc["momentum"], shuffle_batch=False)
    else:
        hook = MoCoHook(lc["momentum"], shuffle_batch=False)
    torch.manual_seed(0)
    loss = build_loss(AttrDict(lc)).to(device)  # MoCoLoss reads its settings as attributes
    model = build_model(cfg.MODEL, cfg.OPTIMIZER).to(device)
    convert = channels_last and name != "region_tracker"  # VISSL's resnet: no key, same conversion
    if convert:
        model = model.to(memory_format=torch.channels_last)
    task = SimpleNamespace(loss=loss, base_model=model, config=cfg, device=torch.device(device), iteration=0)
    dev_type = torch.device(device).type
    return SimpleNamespace(
        task=task, hook=hook, opt=torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9), convert=convert,
        autocast=(lambda: torch.autocast(dev_type, dtype=torch.float16 if dev_type == "cuda" else torch.bfloat16))
        if amp else contextlib.nullcontext,
        scaler=torch.amp.GradScaler("cuda") if amp and dev_type == "cuda" else None)


def region_rois(batch, size, per_image, device):
    g = torch.Generator().manual_seed(0)
    rows = []
    for b in range(batch):
        xy = torch.rand(per_image, 2, generator=g) * size * 0.6
        wh = 16 + torch.rand(per_image, 2, generator=g) * size * 0.35
        rows.append(torch.cat([torch.full((per_image, 1), float(b)), xy, xy + wh], 1))
    return torch.cat(rows).to(device)


def step(run, sample):
    task = run.task
    task.last_batch = SimpleNamespace(sample=sample)
    with run.autocast():
        out = task.base_model(sample["input"])
        if isinstance(out, list) and len(out) == 1:
            out = out[0]
        run.hook.on_forward(task)
        if run.convert and task.iteration == 0:  # the hook has just built the encoder from the config
            task.loss.moco_encoder.to(memory_format=torch.channels_last)
        loss = task.loss(out, None)
    run.opt.zero_grad()
    if run.scaler is None:
        loss.backward()
        run.opt.step()
    else:
        run.scaler.scale(loss).backward()
        run.scaler.step(run.opt)
        run.scaler.update()
    task.iteration += 1


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--regions", type=int, default=8, help="region pairs per image (config MAX_REGION_PAIRS)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--embedding", default="project_then_pool", choices=["project_then_pool", "pool_then_project"],
                    help="the region model's dense_region_head embedding (docs/region_embedding.md)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    a = ap.parse_args(argv)
    for flag in ("batch", "size", "steps"):
        if getattr(a, flag) < 1:
            ap.error(f"--{flag} must be >= 1, got {getattr(a, flag)}")
    a.variants = [v for v in a.variants.split(",") if v]
    bad = [v for v in a.variants if v not in VARIANTS]
    if bad or not a.variants:
        ap.error(f"--variants: unknown {bad or 'empty'}; use {', '.join(VARIANTS)}")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        ap.error(f"--device {a.device}: CUDA is not available on this machine")
    return a


def main(argv=None):
    a = parse_args(argv)
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
    runs = {(m, v): build(m, dev, v, a.embedding) for v in a.variants for m in MODELS}
    times = {k: [] for k in runs}
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    for i in range(a.steps + 1):  # the first step of each builds the momentum encoder: not timed
        for (m, v), run in runs.items():
            sync()
            t0 = time.perf_counter()
            step(run, samples[m])
            sync()
            if i:
                times[(m, v)].append(time.perf_counter() - t0)
    med = {k: statistics.median(t) for k, t in times.items()}
    amp = "fp16 autocast + GradScaler" if dev.startswith("cuda") else "bf16 autocast"
    print(f"device {dev}, ResNet-50, batch {a.batch}, {a.size} px, {a.regions} region pairs/image, "
          f"median of {a.steps} steps, threads {torch.get_num_threads()}, AMP = {amp}, region embedding {a.embedding}")
    print(f"{'variant':<20}{'frame_temporal':>16}{'region_tracker':>16}{'region branch':>15}{'pairs/s (region)':>18}")
    for v in a.variants:
        ft, rt = med[("frame_temporal", v)], med[("region_tracker", v)]
        print(f"{v:<20}{ft:>10.3f} s/step{rt:>10.3f} s/step{100 * (rt / ft - 1):>+14.1f}%{a.batch / rt:>18.1f}")
    for v in a.variants:
        if v != "fp32" and "fp32" in a.variants:
            print(f"{v} vs fp32: frame_temporal x{med[('frame_temporal', 'fp32')] / med[('frame_temporal', v)]:.2f}, "
                  f"region_tracker x{med[('region_tracker', 'fp32')] / med[('region_tracker', v)]:.2f} (speed-up)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
