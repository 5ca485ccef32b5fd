"""The momentum encoder of temporal_contrastive_loss: built, updated and run like VISSL's
MoCoHook (shuffle-BN under DDP), returning frame keys and region keys of the paired frame."""
import torch
from vissl.hooks.moco_hooks import MoCoHook

from vissl_ext.losses.temporal_contrastive_loss import pool_regions
from vissl_ext.registry import register_hook_factory


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
        shuffled = self.is_distributed and self.shuffle_batch
        if shuffled:
            im_k, idx_unshuffle = self._batch_shuffle_ddp(im_k, task)
        k, k_map = loss.moco_encoder(im_k)
        k = torch.nn.functional.normalize(k, dim=1)
        if shuffled:
            k = self._batch_unshuffle_ddp(k, idx_unshuffle)
            k_map = self._batch_unshuffle_ddp(k_map, idx_unshuffle)

        scale = k_map.shape[-1] / im_k.shape[-1]  # same input size for queries and keys
        rois_k = sample["region_boxes_momentum"][0]
        loss.key = k
        loss.region_key = pool_regions(k_map, rois_k, loss.loss_config["roi_output_size"], scale)
        loss.query_rois = sample["region_boxes"][0]
        loss.spatial_scale = scale
        loss.iteration = task.iteration
        assert im_q.shape[-2:] == im_k.shape[-2:], "query and key views must have the same size"


@register_hook_factory("temporal_contrastive")
def temporal_contrastive_hooks(cfg):
    if cfg.LOSS.name != "temporal_contrastive_loss":
        return []
    return [TemporalContrastiveHook(cfg.LOSS.temporal_contrastive_loss.get("momentum", 0.999),
                                    shuffle_batch=not cfg.MODEL.SYNC_BN_CONFIG.CONVERT_BN_TO_SYNC_BN)]
