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


def shuffle_bn_keys(rank, n=4, size=64):
    """TemporalContrastiveHook with shuffle-BN across the 2 ranks. Each image of the global batch
    has its own constant value; returns the hook's frame and region keys and, for comparison, the
    keys of each image encoded alone (eval-mode BN: an image's output depends on it alone)."""
    from types import SimpleNamespace

    from classy_vision.losses import build_loss
    from vissl.models import build_model

    from vissl_ext.hooks.temporal_contrastive_hook import TemporalContrastiveHook
    from vissl_ext.losses.temporal_contrastive_loss import pool_regions
    from vissl_ext_testing import compose

    cfg = compose("config=pretrain/tiny/region_tracker_cpu")
    torch.manual_seed(0)  # same weights on both ranks, as DDP makes them
    model = build_model(cfg.MODEL, cfg.OPTIMIZER).eval()
    loss = build_loss({"name": "temporal_contrastive_loss", **dict(cfg.LOSS.temporal_contrastive_loss)})
    task = SimpleNamespace(loss=loss, base_model=model, config=cfg, device=torch.device("cpu"), iteration=0)
    hook = TemporalContrastiveHook(0.9, shuffle_batch=True)
    colours = torch.randn(2 * n, 3, generator=torch.Generator().manual_seed(5)) * 1.5  # one per image of the global batch
    values = colours[rank * n: (rank + 1) * n, 0].tolist()
    im_k = colours[rank * n: (rank + 1) * n, :, None, None].expand(n, 3, size, size).contiguous()
    rois_k = torch.tensor([[3, 0, 0, 32, 32], [0, 16, 16, 48, 48], [2, 32, 0, 64, 32], [1, 0, 32, 32, 64],
                           [0, 32, 32, 64, 64]], dtype=torch.float32)
    sample = {"input": im_k.flip(0), "data_momentum": [im_k], "region_boxes": [rois_k], "region_boxes_momentum": [rois_k]}
    task.last_batch = SimpleNamespace(sample=sample)
    hook.on_forward(task)  # step 0 builds the momentum encoder
    enc = loss.moco_encoder.eval()
    enc.load_state_dict(model.state_dict())  # the BN statistics too (step 0 moved them per rank)
    seen = []
    handle = enc.register_forward_pre_hook(lambda m, inp: seen.append(inp[0][:, 0, 0, 0].clone()))
    task.iteration = 1
    hook.on_forward(task)  # step 1: shuffled across ranks, encoded, unshuffled
    handle.remove()
    with torch.no_grad():
        alone = [enc(im_k[i: i + 1]) for i in range(n)]
    want_k = torch.cat([torch.nn.functional.normalize(o[0], dim=1) for o in alone])
    one = torch.tensor([0.0, 1, 1, 1, 1])
    want_rk = torch.cat([pool_regions(alone[int(r[0])][1], r[None] * one, loss.loss_config["roi_output_size"], 1 / 16)
                         for r in rois_k])
    return {"key": loss.key, "want_key": want_k, "region_key": loss.region_key, "want_region_key": want_rk,
            "encoded_values": seen[0], "values": torch.tensor(values), "distributed": torch.tensor(hook.is_distributed)}


def monitor_evaluation(rank, train, val, manifest, folder):
    """The online monitor's evaluation of one random-init tiny trunk (same weights on every rank,
    as DDP makes them; BN statistics differ per rank, as a DDP step leaves them): returns rank 0's
    records and, on each rank, whether the trunk is back in train mode with its own statistics."""
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
    return {"metrics": [r["metric"] for r in records], "values": torch.tensor([r["value"] for r in records]),
            "train_mode": torch.tensor(all(m.training for m in model.modules())),
            "own_buffers": torch.tensor(all(torch.equal(a, b) for a, b in zip(before, model.buffers())))}
