"""The momentum encoder of temporal_contrastive_loss: built, updated and run like VISSL's
MoCoHook (shuffle-BN under DDP), returning frame keys and region keys of the paired frame, and
(shot_moco_collator batches) shot keys of the frame from another shot.

Shuffle-BN moves boxes and pooled keys, not feature maps: the regions are pooled on the shuffled
key map where their image was encoded (the boxes are sent there), and only the pooled [K, D]
keys travel back. The shuffle permutation comes from a generator seeded by the step (the same on
every rank, no broadcast), so where each image and box goes is known on the host; the one host
read of a step is every image's region count.
"""
import random

import torch
import torch.distributed as dist
from vissl.hooks.moco_hooks import MoCoHook
from vissl.utils.misc import concat_all_gather

from vissl_ext.losses.temporal_contrastive_loss import check_region_map, loss_settings, pool_regions
from vissl_ext.models.strides import FEATURE_STRIDE
from vissl_ext.models.region_head import region_projector
from vissl_ext.registry import register_hook_factory


def region_spatial_scale(config) -> float:
    """ROIAlign scale from input pixels to the region map: 1 / the trunk's stride at
    config.MODEL.TRUNK.REGION_FEATURE, whatever the input size (the map of a 200 px input has
    ceil(200 / 16) = 13 cells, and 13 / 200 is not the stride)."""
    return 1.0 / FEATURE_STRIDE[config["MODEL"]["TRUNK"].get("REGION_FEATURE", "res4")]


class TemporalContrastiveHook(MoCoHook):
    """After the forward pass: update the momentum encoder, encode the key frames (shuffled
    across ranks for BN, as MoCo), pool the key regions, and hand keys and boxes to the loss."""

    @torch.no_grad()
    def on_forward(self, task) -> None:
        loss = task.loss
        if loss.moco_encoder is None:
            self._build_moco_encoder(task)  # restores encoder + queues from loss.checkpoint on resume
            from classy_vision.generic.distributed_util import is_distributed_training_run

            self.is_distributed = is_distributed_training_run()
            if loss.checkpoint is not None:
                # resumed: the saved encoder is that of the previous step; this step's momentum
                # update still has to happen, as in the uninterrupted run (MoCoHook skips it)
                for p in loss.moco_encoder.parameters():
                    p.requires_grad = False
                self._update_momentum_encoder(task)
                loss.checkpoint = None
        else:
            self._update_momentum_encoder(task)

        sample = task.last_batch.sample
        im_q = sample["input"]
        im_k = sample["data_momentum"][0]
        loss.iteration = task.iteration
        rois_k = scale = None
        if "region_boxes_momentum" in sample:
            scale = region_spatial_scale(task.config)
            rois_k = sample["region_boxes_momentum"][0]
        loss.key, loss.region_key, gathered = self._encode_keys(im_k, task, rois_k, scale)
        if rois_k is not None:
            loss.query_rois = sample["region_boxes"][0]
            loss.region_project = region_projector(task.base_model)
            loss.spatial_scale = scale
            loss.query_input_size = tuple(im_q.shape[-2:])
        if "shot_data_momentum" in sample:
            # shot level: the key is the momentum encoding of z_j, a frame of another shot
            im_s = sample["shot_data_momentum"][0].to(im_k.device, non_blocking=True)
            loss.shot_key, _, shot_gathered = self._encode_keys(im_s, task, salt=1)
            if gathered is not None:
                gathered["keys"]["shot_key"] = shot_gathered["keys"]["key"]
                gathered["counts"]["shot_key"] = shot_gathered["counts"]["key"]
        loss.gathered = gathered

    def on_loss_and_meter(self, task) -> None:
        """The loss's finite check, on the loss value VISSL's train step has read on the host (so
        no extra sync); it runs before VISSL's CheckNanLossHook (see registry.hook_generator)."""
        losses = getattr(task, "losses", None)
        if losses:
            task.loss.raise_if_nonfinite(losses[-1])

    @torch.no_grad()
    def _encode_keys(self, im, task, rois=None, scale=None, salt=0):
        """(normalised frame keys, L2-normalised region keys of rois or None, gathered) of the
        momentum encoder on a batch of key views. Under shuffle-BN, gathered holds every rank's
        keys and counts (see TemporalContrastiveLoss.gathered); else None."""
        if self.is_distributed and self.shuffle_batch:
            return self._encode_shuffled(im, task, rois, scale, salt)
        out = task.loss.moco_encoder(im)
        k = torch.nn.functional.normalize(out[0], dim=1)
        if rois is None:
            return k, None, None
        k_map = out[1]
        check_region_map(k_map, im.shape[-2:], scale, "key view (data_momentum)")
        return k, pool_regions(k_map, rois, task.loss.loss_config["roi_output_size"], scale,
                               region_projector(task.loss.moco_encoder)), None

    @torch.no_grad()
    def _encode_shuffled(self, im, task, rois, scale, salt):
        """Shuffle-BN: each rank encodes a random B of the W*B images of all ranks; the boxes
        go to the rank that encoded their image, are pooled there, and only the pooled keys come
        back. Every rank ends with every rank's keys in rank order (the loss's queues need them)."""
        W, rank, B, dev = dist.get_world_size(), dist.get_rank(), im.shape[0], im.device
        seed = int(task.config.get("SEED_VALUE", 0)) * 1_000_003 + 2 * int(task.iteration) + salt
        perm = random.Random(seed).sample(range(W * B), W * B)
        where = [0] * (W * B)  # the position of each image of the global batch in the shuffled one
        for pos, g in enumerate(perm):
            where[g] = pos
        if rois is not None:
            # boxes grouped by image, stably: every image's boxes are then a block whose offset
            # follows from the counts alone; the local keys are put back in the boxes' order at the end
            img = rois[:, 0].long()
            order = torch.sort(img, stable=True).indices
            per_image = torch.zeros(B, dtype=torch.long, device=dev).index_add_(0, img, torch.ones_like(img))
            n_img = concat_all_gather(per_image).tolist()  # the step's one host read
        out = task.loss.moco_encoder(concat_all_gather(im)[_index(perm[rank * B:(rank + 1) * B], dev)])
        all_k = concat_all_gather(torch.nn.functional.normalize(out[0], dim=1))[_index(where, dev)]
        gathered = {"keys": {"key": all_k}, "counts": {"key": [B] * W}}
        k = all_k[rank * B:(rank + 1) * B]
        if rois is None:
            return k, None, gathered
        k_map = out[1]
        check_region_map(k_map, im.shape[-2:], scale, "key view (data_momentum)")
        all_rk = _pool_where_encoded(k_map, rois[order], n_img, perm, where, W, B,
                                     task.loss.loss_config["roi_output_size"], scale,
                                     region_projector(task.loss.moco_encoder))
        per_rank = [sum(n_img[r * B:(r + 1) * B]) for r in range(W)]
        start = sum(per_rank[:rank])
        rk = torch.empty_like(all_rk[: per_rank[rank]])
        rk[order] = all_rk[start: start + per_rank[rank]]
        gathered["keys"]["region_key"] = all_rk
        gathered["counts"]["region_key"] = per_rank
        return k, rk, gathered


def _index(values, device) -> torch.Tensor:
    """A host list as a long index tensor on device, copied without waiting for the device."""
    return torch.tensor(values, dtype=torch.long).to(device, non_blocking=True)


def _pool_where_encoded(k_map, rois, n_img, perm, where, W, B, output_size, scale, project=None) -> torch.Tensor:
    """Region keys of every rank's boxes (rank order, grouped by image), pooled on the shuffled
    maps: rank r's boxes (rows ordered by image) and n_img, every image's box count in global
    order (image g = rank * B + b); k_map holds the images perm[rank * B:(rank + 1) * B]."""
    rank = dist.get_rank()
    start = [0]  # row of the first box of each global image, in the rank-ordered concatenation
    for n in n_img:
        start.append(start[-1] + n)
    if start[-1] == 0:  # under pool_then_project the keys have the projection's width
        empty = k_map.new_zeros((0, k_map.shape[1]))
        return empty if project is None else project(empty)
    per_rank = [start[(r + 1) * B] - start[r * B] for r in range(W)]
    # 1. every rank's boxes to every rank (K x 5 numbers); keep the boxes of the images encoded here
    boxes = _gather_padded(rois, per_rank)
    pad = max(per_rank)
    sel, slot = [], []
    for p, g in enumerate(perm[rank * B:(rank + 1) * B]):
        first = (g // B) * pad + start[g] - start[(g // B) * B]
        sel += range(first, first + n_img[g])
        slot += [p] * n_img[g]
    mine = boxes[_index(sel, k_map.device)]
    mine[:, 0] = _index(slot, k_map.device).to(mine.dtype)
    pooled = pool_regions(k_map, mine, output_size, scale, project)
    # 2. the pooled keys of every rank (K x D numbers), put back in the global rank order
    pooled_per_rank = [sum(n_img[g] for g in perm[r * B:(r + 1) * B]) for r in range(W)]
    keys = _gather_padded(pooled, pooled_per_rank)
    pad_k = max(pooled_per_rank)
    offset = [0] * (W * B)  # row of each image's first key within the rows of the rank that pooled it
    for r in range(W):
        o = 0
        for g in perm[r * B:(r + 1) * B]:
            offset[g] = o
            o += n_img[g]
    back = []
    for g in range(W * B):
        first = (where[g] // B) * pad_k + offset[g]
        back += range(first, first + n_img[g])
    return keys[_index(back, k_map.device)]


def _gather_padded(x: torch.Tensor, counts) -> torch.Tensor:
    """all_gather of x padded to max(counts) rows: [W * max(counts), ...], rank r's rows first."""
    padded = x.new_zeros((max(counts),) + tuple(x.shape[1:]))
    padded[: x.shape[0]] = x
    out = [torch.zeros_like(padded) for _ in counts]
    dist.all_gather(out, padded)
    return torch.cat(out)


@register_hook_factory("temporal_contrastive")
def temporal_contrastive_hooks(cfg):
    if cfg.LOSS.name != "temporal_contrastive_loss":
        return []
    return [TemporalContrastiveHook(loss_settings(cfg.LOSS.get("temporal_contrastive_loss", {}))["momentum"],
                                    shuffle_batch=not cfg.MODEL.SYNC_BN_CONFIG.CONVERT_BN_TO_SYNC_BN)]
