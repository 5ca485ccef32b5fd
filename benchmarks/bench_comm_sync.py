#!/usr/bin/env python
"""Per training step of temporal_contrastive_loss: the bytes each rank hands to torch.distributed
collectives, and the host reads of tensor values (GPU->host syncs on a GPU), by call site.

    python benchmarks/bench_comm_sync.py                                  # pretrain/region_tracker, batch 32, 224 px, 2 gloo ranks
    python benchmarks/bench_comm_sync.py --config pretrain/tiny/region_tracker_cpu --batch 4 --size 64 --world 1

The ranks run VISSL's model, loss and TemporalContrastiveHook (shuffle-BN on) on synthetic views
with --regions region pairs per image on rank 0 and --regions-rank1 on rank 1, in the order of
VISSL's standard train step (forward, on_forward hooks, loss, the all-reduced loss read on the
host, on_loss_and_meter hooks, backward, SGD step); the step after the first is measured. Not
counted: DDP's gradient all-reduce (the same for any loss).
"""
import argparse
import os
import sys
import tempfile
from types import SimpleNamespace

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

import torch  # noqa: E402

import vissl_ext  # noqa: E402,F401
from vissl_ext.config import compose_config  # noqa: E402
from vissl_ext.utils.probes import count_collective_bytes, count_host_syncs  # noqa: E402


def build(config, device="cpu", shuffle=True, overrides=()):
    """VISSL's model and loss of a config, TemporalContrastiveHook, SGD: the parts of a step."""
    from classy_vision.losses import build_loss
    from vissl.models import build_model

    from vissl_ext.hooks.temporal_contrastive_hook import TemporalContrastiveHook

    _, cfg = compose_config([f"config={config}", *overrides])
    torch.manual_seed(0)  # the same weights on every rank, as DDP makes them
    model = build_model(cfg.MODEL, cfg.OPTIMIZER).to(device)
    lc = dict(cfg.LOSS.temporal_contrastive_loss)
    loss = build_loss({"name": "temporal_contrastive_loss", **lc}).to(device)
    task = SimpleNamespace(loss=loss, base_model=model, config=cfg, device=torch.device(device), iteration=0,
                           losses=[])
    hook = TemporalContrastiveHook(loss.loss_config["momentum"], shuffle_batch=shuffle)
    return task, hook, torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)


def region_batch(batch, size, per_image, device="cpu", seed=0):
    """Random views and per_image matched boxes (16 px and larger) per image, ordered by image."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for b in range(batch):
        xy = torch.rand(per_image, 2, generator=g) * size * 0.6
        wh = 16 + torch.rand(per_image, 2, generator=g) * size * 0.35
        rows.append(torch.cat([torch.full((per_image, 1), float(b)), xy, (xy + wh).clamp(max=size)], 1))
    rois = torch.cat(rows) if rows else torch.zeros(0, 5)
    views = [torch.randn(batch, 3, size, size, generator=g).to(device) for _ in range(2)]
    return {"input": views[0], "data_momentum": [views[1]], "region_boxes": [rois.to(device)],
            "region_boxes_momentum": [rois.to(device)]}


def train_step(task, hook, opt, sample):
    """One step in the order of VISSL's standard_train_step."""
    import torch.distributed as dist

    task.last_batch = SimpleNamespace(sample=sample)
    out = task.base_model(sample["input"])
    hook.on_forward(task)
    local = task.loss(out, None)
    total = local.detach().clone()
    if dist.is_initialized():  # VISSL's all_reduce_mean of the loss, then its one host read
        dist.all_reduce(total)
        total /= dist.get_world_size()
    task.losses.append(total.cpu().item() * sample["input"].shape[0])
    hook.on_loss_and_meter(task)
    opt.zero_grad()
    local.backward()
    opt.step()
    task.iteration += 1


def measure(rank, world, a, tmp):
    import torch.distributed as dist

    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world)
    torch.set_num_threads(max(1, torch.get_num_threads() // world))
    task, hook, opt = build(a.config, a.device, overrides=a.override)
    per_image = a.regions if rank == 0 else a.regions_rank1
    sample = region_batch(a.batch, a.size, per_image, a.device, seed=rank)
    train_step(task, hook, opt, sample)  # builds the momentum encoder (and reads the queue pointers once)
    with count_host_syncs() as syncs, count_collective_bytes() as comm:
        train_step(task, hook, opt, sample)
    return {"syncs": syncs.by_site(), "comm": comm.by_site(), "regions": sample["region_boxes"][0].shape[0]}


def _spawned(rank, world, a, tmp):
    torch.save(measure(rank, world, a, tmp), os.path.join(tmp, f"rank{rank}.pt"))


def report(rank, r):
    ours = {k: v for k, v in r["syncs"].items() if k.startswith("vissl_ext/")}
    print(f"rank {rank}: {r['regions']} region pairs")
    print(f"  bytes handed to collectives: {sum(r['comm'].values()):,}")
    for site, n in sorted(r["comm"].items(), key=lambda kv: -kv[1]):
        print(f"    {n:>12,}  {site}")
    print(f"  host reads of tensor values: {sum(r['syncs'].values())} in the step, {sum(ours.values())} in vissl_ext")
    for site, n in sorted(r["syncs"].items()):
        print(f"    {n:>3}  {site}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="pretrain/region_tracker")
    ap.add_argument("--override", action="append", default=[], help="a config override (repeatable)")
    ap.add_argument("--device", default="cpu", choices=["cpu"], help="gloo ranks on CPU")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--regions", type=int, default=4, help="region pairs per image on rank 0")
    ap.add_argument("--regions-rank1", type=int, default=2, help="region pairs per image on rank 1")
    ap.add_argument("--world", type=int, default=2, choices=[1, 2])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if a.world == 1:
            results = [measure(0, 1, a, tmp)]
        else:
            torch.multiprocessing.spawn(_spawned, args=(a.world, a, tmp), nprocs=a.world, join=True)
            results = [torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=True) for r in range(a.world)]
    print(f"{a.config}, batch {a.batch} per rank, {a.size} px, "
          + ("2 gloo ranks, shuffle-BN on" if a.world == 2 else "1 process (no shuffle-BN)"))
    for rank, r in enumerate(results):
        report(rank, r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
