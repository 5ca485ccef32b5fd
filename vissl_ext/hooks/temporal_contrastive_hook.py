"""The momentum encoder of temporal_contrastive_loss: built, updated and run like VISSL's
MoCoHook (shuffle-BN under DDP), returning frame keys and region keys of the paired frame, and
(shot_moco_collator batches) shot keys of the frame from another shot."""
import torch
from vissl.hooks.moco_hooks import MoCoHook

from vissl_ext.losses.temporal_contrastive_loss import check_region_map, loss_settings, pool_regions
from vissl_ext.models.region_head import region_projector
from vissl_ext.registry import register_hook_factory
from vissl_ext.tracking.features import FEATURE_STRIDE


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
        k, k_map = self._encode_keys(im_k, task)
        loss.key = k
        loss.iteration = task.iteration
        if "region_boxes_momentum" in sample:
            scale = region_spatial_scale(task.config)
            check_region_map(k_map, im_k.shape[-2:], scale, "key view (data_momentum)")
            rois_k = sample["region_boxes_momentum"][0]
            loss.region_key = pool_regions(k_map, rois_k, loss.loss_config["roi_output_size"], scale,
                                           region_projector(loss.moco_encoder))
            loss.query_rois = sample["region_boxes"][0]
            loss.region_project = region_projector(task.base_model)
            loss.spatial_scale = scale
            loss.query_input_size = tuple(im_q.shape[-2:])
        if "shot_data_momentum" in sample:
            # shot level: the key is the momentum encoding of z_j, a frame of another shot
            im_s = sample["shot_data_momentum"][0].to(im_k.device, non_blocking=True)
            loss.shot_key, _ = self._encode_keys(im_s, task)

    @torch.no_grad()
    def _encode_keys(self, im, task):
        """(normalised frame keys, region map or None) of the momentum encoder on a batch of key
        views, shuffled across ranks for BN as MoCo does."""
        shuffled = self.is_distributed and self.shuffle_batch
        if shuffled:
            im, idx_unshuffle = self._batch_shuffle_ddp(im, task)
        out = task.loss.moco_encoder(im)
        k = torch.nn.functional.normalize(out[0], dim=1)
        k_map = out[1] if len(out) > 1 else None  # frame-only models (shot_temporal) have no map
        if shuffled:
            k = self._batch_unshuffle_ddp(k, idx_unshuffle)
            if k_map is not None:
                k_map = self._batch_unshuffle_ddp(k_map, idx_unshuffle)
        return k, k_map


@register_hook_factory("temporal_contrastive")
def temporal_contrastive_hooks(cfg):
    if cfg.LOSS.name != "temporal_contrastive_loss":
        return []
    return [TemporalContrastiveHook(loss_settings(cfg.LOSS.get("temporal_contrastive_loss", {}))["momentum"],
                                    shuffle_batch=not cfg.MODEL.SYNC_BN_CONFIG.CONVERT_BN_TO_SYNC_BN)]
