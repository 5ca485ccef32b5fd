"""ADE20K semantic segmentation with detectron2 on frozen VISSL trunks (paper Table 3).

As detectron2's projects do (``from deeplab import add_deeplab_config``), importing this package
registers ``TwoLayerUpsampleHead`` in detectron2's SEM_SEG_HEADS_REGISTRY and exports the config
function, so a user's own detectron2 ``train_net.py`` can use our config::

    from vissl_ext.segmentation import add_segmentation_config
    cfg = add_segmentation_config(get_cfg()); cfg.merge_from_file(".../ade20k_sem_seg_frozen_R50.yaml")

It first applies :mod:`vissl_ext.segmentation.d2_compat`, before anything imports detectron2.
Modules: ``convert`` (VISSL -> detectron2 weights), ``ade20k`` (dataset preparation and
registration), ``head`` (the two-layer upsampling head on the frozen trunk's res5), ``train``
(config setup, the training augmentation, and the DefaultTrainer subclass with SemSegEvaluator).
"""
from vissl_ext.segmentation import d2_compat as _d2_compat

_d2_compat.apply()

from vissl_ext.segmentation.head import TwoLayerUpsampleHead, add_segmentation_config  # noqa: E402  (registers)

__all__ = ["TwoLayerUpsampleHead", "add_segmentation_config"]
