"""The invariance sets of the paper (Table 1) and how their images are prepared."""
from collections import OrderedDict

# name -> (invariance measured, square input size in pixels: the public code's sizes)
SETS = OrderedDict([
    ("got10k_occlusion", ("occlusion", 128)),
    ("aloi_viewpoint", ("viewpoint", 128)),
    ("aloi_illumination_direction", ("illumination_direction", 128)),
    ("aloi_illumination_color", ("illumination_color", 128)),
    ("pascal3d_instance", ("instance", 224)),
    ("pascal3d_instance_viewpoint", ("instance_viewpoint", 224)),
])

# Table 1 column order and headings
INVARIANCE_TITLES = OrderedDict([
    ("occlusion", "Occlusion"),
    ("viewpoint", "Viewpoint"),
    ("illumination_direction", "Illumination Dir."),
    ("illumination_color", "Illumination Color"),
    ("instance", "Instance"),
    ("instance_viewpoint", "Instance+Viewpoint"),
    ("tracked_regions", "Tracked regions"),  # the demo's set (vissl_ext.demo.track_ris)
])

DEFAULT_IMAGE_SIZE = 224  # own data (folder layout): ImageNet-like input
