"""ADE20K semantic segmentation with detectron2 on frozen VISSL trunks (paper Table 3).

Importing this package applies :mod:`vissl_ext.segmentation.d2_compat` before anything imports
detectron2. Modules: ``convert`` (VISSL -> detectron2 weights), ``ade20k`` (dataset preparation
and registration), ``head`` (the two-layer upsampling head and the padded frozen backbone),
``train`` (config setup and the DefaultTrainer subclass with SemSegEvaluator).
"""
from vissl_ext.segmentation import d2_compat as _d2_compat

_d2_compat.apply()
