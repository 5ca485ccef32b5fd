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
