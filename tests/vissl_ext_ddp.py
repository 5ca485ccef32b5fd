"""Two-process gloo runs on CPU for the tests (torch.multiprocessing spawn, file:// rendezvous).
The workers live here, in an importable module, because spawned children unpickle them by name.

    from vissl_ext_ddp import run_ranks
    results = run_ranks(worker_fn, tmp_path, world_size=2)   # [rank 0's dict, rank 1's dict]
"""
import os

import torch


def _entry(rank, fn, world_size, tmp, args):
    import torch.distributed as dist

    import vissl_ext_testing  # noqa: F401  (repo first on sys.path, vissl_ext registered, compat fixes)

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/rendezvous", rank=rank, world_size=world_size)
    try:
        out = fn(rank, *args)
        torch.save(out, os.path.join(tmp, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def run_ranks(fn, tmp_path, world_size: int = 2, args=()):
    """Run fn(rank, *args) in world_size gloo processes; returns what each returned (tensors in a dict)."""
    import torch.multiprocessing as mp

    tmp = str(tmp_path)
    mp.spawn(_entry, args=(fn, world_size, tmp, args), nprocs=world_size, join=True)
    return [torch.load(os.path.join(tmp, f"rank{r}.pt"), weights_only=True) for r in range(world_size)]


# ---- workers ---------------------------------------------------------------------------------

def gather_into_queues(rank, counts_per_step):
    """temporal_contrastive_loss on each rank with its own number of region pairs per step;
    returns the queues after every step and the keys each rank contributed."""
    from vissl_ext.losses.temporal_contrastive_loss import TemporalContrastiveLoss

    loss = TemporalContrastiveLoss(dict(embedding_dim=4, queue_size=16, region_embedding_dim=3, region_queue_size=32,
                                        roi_output_size=1))
    out = {}
    for step, counts in enumerate(counts_per_step):
        g = torch.Generator().manual_seed(100 * step + rank)
        n = counts[rank]
        loss.key = torch.nn.functional.normalize(torch.randn(2, 4, generator=g), dim=1)
        loss.region_key = torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1)
        loss.query_rois = torch.tensor([[i % 2, 0, 0, 4, 4] for i in range(n)], dtype=torch.float32).reshape(n, 5)
        loss.spatial_scale = 1.0
        loss([torch.randn(2, 4, generator=g), torch.randn(2, 3, 8, 8, generator=g)])
        out[f"key{step}"], out[f"region_key{step}"] = loss.key.clone(), loss.region_key.clone()
        out[f"queue{step}"], out[f"region_queue{step}"] = loss.queue.clone(), loss.region_queue.clone()
        out[f"ptr{step}"], out[f"region_ptr{step}"] = loss.queue_ptr.clone(), loss.region_queue_ptr.clone()
    return out


SHUFFLE_BN_ROIS = [[3, 0, 0, 32, 32], [0, 16, 16, 48, 48], [2, 32, 0, 64, 32], [1, 0, 32, 32, 64], [0, 32, 32, 64, 64]]


def shuffle_bn_keys(rank, cases=((SHUFFLE_BN_ROIS, SHUFFLE_BN_ROIS),), n=4, size=64):
    """TemporalContrastiveHook with shuffle-BN across the 2 ranks, for each case (the key boxes of
    rank 0 and of rank 1, not grouped by image). Each image of the global batch has its own
    constant value; returns the hook's frame and region keys, what it hands the loss for the
    queues, and, for comparison, the keys of each image encoded alone (eval-mode BN: an image's
    output depends on it alone) and the momentum encoder's parameters."""
    from types import SimpleNamespace

    from classy_vision.losses import build_loss
    from vissl.models import build_model

    from vissl_ext.hooks.temporal_contrastive_hook import TemporalContrastiveHook
    from vissl_ext.losses.temporal_contrastive_loss import pool_regions
    from vissl_ext_testing import compose

    cfg = compose("config=pretrain/tiny/region_tracker_cpu")
    out = {}
    for c, rois_per_rank in enumerate(cases):
        torch.manual_seed(0)  # same weights on both ranks, as DDP makes them
        model = build_model(cfg.MODEL, cfg.OPTIMIZER).eval()
        loss = build_loss({"name": "temporal_contrastive_loss", **dict(cfg.LOSS.temporal_contrastive_loss)})
        task = SimpleNamespace(loss=loss, base_model=model, config=cfg, device=torch.device("cpu"), iteration=0)
        hook = TemporalContrastiveHook(0.9, shuffle_batch=True)
        colours = torch.randn(2 * n, 3, generator=torch.Generator().manual_seed(5)) * 1.5  # one per image of the global batch
        values = colours[rank * n: (rank + 1) * n, 0].tolist()
        im_k = colours[rank * n: (rank + 1) * n, :, None, None].expand(n, 3, size, size).contiguous()
        rois_k = torch.tensor(rois_per_rank[rank], dtype=torch.float32).reshape(-1, 5)
        sample = {"input": im_k.flip(0), "data_momentum": [im_k], "region_boxes": [rois_k],
                  "region_boxes_momentum": [rois_k], "shot_data_momentum": [im_k.flip(0)]}
        task.last_batch = SimpleNamespace(sample=sample)
        hook.on_forward(task)  # step 0 builds the momentum encoder
        enc = loss.moco_encoder.eval()
        enc.load_state_dict(model.state_dict())  # the BN statistics too (step 0 moved them per rank)
        seen = []
        handle = enc.register_forward_pre_hook(lambda m, inp: seen.append(inp[0][:, 0, 0, 0].clone()))
        task.iteration = 1
        hook.on_forward(task)  # step 1: shuffled across ranks, encoded, pooled where encoded, sent back
        handle.remove()  # (its second call encoded the shot views: the same images in reverse order)
        with torch.no_grad():
            alone = [enc(im_k[i: i + 1]) for i in range(n)]
        want_k = torch.cat([torch.nn.functional.normalize(o[0], dim=1) for o in alone])
        one = torch.tensor([0.0, 1, 1, 1, 1])
        want_rk = torch.cat([pool_regions(alone[int(r[0])][1], r[None] * one, loss.loss_config["roi_output_size"], 1 / 16)
                             for r in rois_k] or [torch.zeros(0, want_k.shape[1])])
        out.update({f"key{c}": loss.key, f"want_key{c}": want_k, f"region_key{c}": loss.region_key,
                    f"want_region_key{c}": want_rk, f"rois{c}": rois_k,
                    f"all_key{c}": loss.gathered["keys"]["key"], f"shot_key{c}": loss.shot_key,
                    f"all_shot_key{c}": loss.gathered["keys"]["shot_key"], f"all_region_key{c}": loss.gathered["keys"]["region_key"],
                    f"region_counts{c}": torch.tensor(loss.gathered["counts"]["region_key"]),
                    f"encoded_values{c}": seen[0], f"values{c}": torch.tensor(values),
                    f"encoder{c}": torch.cat([p.flatten() for p in enc.parameters()]),
                    f"distributed{c}": torch.tensor(hook.is_distributed)})
    return out


def global_batch_case(counts, B=2, C=3, F=5, seed=0):
    """The global batch of one case of global_batch_loss: every rank's inputs (the same on every
    rank and in the test's reference). Boxes of side 4 on integer pixels of 8x8 maps: with a 2x2
    ROIAlign grid each pooled feature is the plain mean of a 4x4 block."""
    g = torch.Generator().manual_seed(seed + 1000 * sum(counts))
    W = len(counts)
    data = {"x_f": torch.randn(W * B, F, generator=g), "x_map": torch.randn(W * B, C, 8, 8, generator=g),
            "key": torch.nn.functional.normalize(torch.randn(W * B, 4, generator=g), dim=1)}
    rois, rkeys = [], []
    for n in counts:
        xy = torch.randint(0, 5, (n, 2), generator=g).float()
        rois.append(torch.cat([torch.randint(0, B, (n, 1), generator=g).float(), xy, xy + 4], 1))
        rkeys.append(torch.nn.functional.normalize(torch.randn(n, 3, generator=g), dim=1))
    data["rois"], data["region_key"] = rois, rkeys
    return data


class TwoHeads(torch.nn.Module):
    """A frame head (linear) and a region map head (1x1 conv): the two outputs the loss takes."""

    def __init__(self, C=3, F=5):
        super().__init__()
        torch.manual_seed(0)
        self.frame = torch.nn.Linear(F, 4)
        self.region = torch.nn.Conv2d(C, 3, 1)

    def forward(self, x_f, x_map):
        return [self.frame(x_f), self.region(x_map)]


LOSS_SETTINGS = dict(embedding_dim=4, queue_size=16, region_embedding_dim=3, region_queue_size=80, temperature=0.2,
                     region_temperature=0.1, roi_output_size=2, frame_weight=1.0, region_weight=0.5)


def global_batch_loss(rank, cases, B=2):
    """temporal_contrastive_loss under DDP with each case's region pair counts per rank (one step
    per case, a fresh model and loss): the terms, the gradients DDP leaves, the queues."""
    from vissl_ext.losses.temporal_contrastive_loss import TemporalContrastiveLoss

    out = {}
    for i, counts in enumerate(cases):
        d = global_batch_case(counts, B)
        model = torch.nn.parallel.DistributedDataParallel(TwoHeads())
        loss = TemporalContrastiveLoss(LOSS_SETTINGS)
        out[f"queue0_{i}"], out[f"region_queue0_{i}"] = loss.queue.clone(), loss.region_queue.clone()
        mine = slice(rank * B, (rank + 1) * B)
        loss.key, loss.region_key = d["key"][mine], d["region_key"][rank]
        loss.query_rois, loss.spatial_scale = d["rois"][rank], 1.0
        total = loss(model(d["x_f"][mine], d["x_map"][mine]))
        total.backward()
        out[f"frame_{i}"], out[f"region_{i}"] = loss.last_terms["frame"], loss.last_terms["region"]
        for name, p in model.module.named_parameters():
            out[f"grad_{name}_{i}"] = p.grad.clone()
        out[f"queue_{i}"], out[f"region_queue_{i}"] = loss.queue.clone(), loss.region_queue.clone()
        out[f"ptr_{i}"], out[f"region_ptr_{i}"] = loss.queue_ptr.clone(), loss.region_queue_ptr.clone()
    return out


def host_reads_of_a_step(rank, per_image=(4, 2)):
    """benchmarks/bench_comm_sync.py's measured step (the tiny config, batch 4, 64 px, per_image
    region pairs per image on rank 0 / rank 1, shuffle-BN on): host reads and collective bytes by site."""
    import sys
    from types import SimpleNamespace

    from vissl_ext_testing import REPO

    sys.path.insert(0, os.path.join(REPO, "benchmarks"))
    import bench_comm_sync

    a = SimpleNamespace(config="pretrain/tiny/region_tracker_cpu", override=[], device="cpu", batch=4, size=64,
                        regions=per_image[0], regions_rank1=per_image[1])
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    return bench_comm_sync.measure(rank, world, a, None)


def region_embedding_grads(rank, embedding, channels_last):
    """VISSL's region model in DDP as VISSL wraps it (find_unused_parameters off), the region head
    set to ``embedding``, three steps with each rank's own batch and region count (rank 0 has none
    at step 1); returns per step how many parameters got no gradient and the region head's and
    first convolution's gradients, and a last forward (DDP raises there when a step left a
    parameter unreduced)."""
    from types import SimpleNamespace

    from classy_vision.losses import build_loss
    from torch.nn.parallel import DistributedDataParallel
    from vissl.models import build_model

    from vissl_ext.hooks.temporal_contrastive_hook import TemporalContrastiveHook
    from vissl_ext_testing import compose

    cfg = compose("config=pretrain/tiny/region_tracker_cpu", f"config.MODEL.HEAD.PARAMS.1.1.embedding={embedding}",
                  f"config.MODEL.TRUNK.CHANNELS_LAST={channels_last}")
    torch.manual_seed(0)
    model = build_model(cfg.MODEL, cfg.OPTIMIZER)
    ddp = DistributedDataParallel(model, broadcast_buffers=False, find_unused_parameters=False)
    loss = build_loss({"name": "temporal_contrastive_loss", **dict(cfg.LOSS.temporal_contrastive_loss)})
    task = SimpleNamespace(loss=loss, base_model=model, config=cfg, device=torch.device("cpu"), iteration=0)
    hook = TemporalContrastiveHook(0.99, shuffle_batch=False)
    out = {}
    for step, counts in enumerate([(2, 3), (0, 2), (1, 1)]):
        g = torch.Generator().manual_seed(10 * step + rank)
        rois = torch.tensor([[i % 2, 4 + 4 * i, 8, 36 + 4 * i, 48] for i in range(counts[rank])],
                            dtype=torch.float32).reshape(-1, 5)
        sample = {"input": torch.randn(2, 3, 64, 64, generator=g), "data_momentum": [torch.randn(2, 3, 64, 64, generator=g)],
                  "region_boxes": [rois], "region_boxes_momentum": [rois]}
        task.iteration, task.last_batch = step, SimpleNamespace(sample=sample)
        output = ddp(sample["input"])
        hook.on_forward(task)
        ddp.zero_grad(set_to_none=True)
        loss(output).backward()
        out[f"missing{step}"] = torch.tensor(sum(p.grad is None for p in model.parameters()))
        out[f"head{step}"] = torch.cat([p.grad.flatten() for p in model.heads[1].parameters()])
        out[f"conv1_{step}"] = model.trunk._feature_blocks.conv1.weight.grad.flatten().clone()
    ddp(torch.randn(2, 3, 64, 64))
    out["conv1_channels_last"] = torch.tensor(model.trunk._feature_blocks.conv1.weight.is_contiguous(
        memory_format=torch.channels_last))
    return out


def monitor_evaluation(rank, train, val, manifest, folder):
    """The online monitor's evaluation of one random-init tiny trunk (same weights on every rank,
    as DDP makes them; BN statistics differ per rank, as a DDP step leaves them): returns rank 0's
    records of two evaluations (the second from the views the first kept) and, on each rank,
    whether the trunk is back in train mode with its own statistics."""
    from types import SimpleNamespace

    from vissl.models import build_model

    from vissl_ext.hooks.monitor_hook import MonitorHook, monitor_cfg
    from vissl_ext_testing import compose

    cfg = compose("config=pretrain/tiny/frame_temporal_cpu", "config.MONITOR.ENABLED=true",
                  f"config.MONITOR.KNN.TRAIN={train}", f"config.MONITOR.KNN.VAL={val}", f"config.MONITOR.RIS.MANIFEST={manifest}",
                  "config.MONITOR.BATCHSIZE=8", "config.MONITOR.IMAGE_SIZE=32")
    torch.manual_seed(0)
    model = build_model(cfg.MODEL, cfg.OPTIMIZER).train()
    with torch.no_grad():  # BN statistics other than the init's 0 / 1, so eval mode matters
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                if rank:  # DDP training leaves each rank its own statistics; rank 0's are the checkpoint's
                    m.running_mean.add_(0.05)
    hook = MonitorHook(monitor_cfg(cfg))
    task = SimpleNamespace(base_model=model, checkpoint_folder=folder, iteration=0, max_iteration=4, num_epochs=2,
                           hooks=[], train=True)
    hook.on_start(task)
    task.iteration = 2
    before = [b.clone() for b in model.buffers()]
    records = hook.evaluate(task)
    task.iteration = 4
    again = hook.evaluate(task)  # from the views kept by the first evaluation
    return {"metrics": [r["metric"] for r in records], "values": torch.tensor([r["value"] for r in records]),
            "again": torch.tensor([r["value"] for r in again]), "kept": torch.tensor(len(hook.cache.batches)),
            "train_mode": torch.tensor(all(m.training for m in model.modules())),
            "own_buffers": torch.tensor(all(torch.equal(a, b) for a, b in zip(before, model.buffers())))}
