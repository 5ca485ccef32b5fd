"""vissl_ext: the system of "Demystifying Contrastive Self-Supervised Learning" (Purushwalkam &
Gupta, 2020) as a VISSL plugin.

``import vissl_ext`` applies the compatibility fixes VISSL needs on this stack and registers
every component (data sources, transforms, collators, losses, heads, hooks) with VISSL. It is
idempotent and safe in the worker processes VISSL's launcher spawns.
"""
from vissl_ext.utils import compat as _compat

_compat.apply()

__version__ = "0.1.0"

_REGISTERED = False


def register_all():
    """Import every module that registers something with VISSL (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    import importlib
    import os

    for mod in _COMPONENT_MODULES:
        importlib.import_module(mod)
    _REGISTERED = True
    # Other projects' plugin modules, comma-separated: the environment reaches every process
    # VISSL's launcher spawns, so their registrations exist in each worker too.
    for mod in filter(None, (m.strip() for m in os.environ.get("VISSL_EXT_PLUGINS", "").split(","))):
        importlib.import_module(mod)


# Modules whose import registers components. Other projects add theirs with the decorators of
# vissl_ext.registry instead of editing this list.
_COMPONENT_MODULES = [
    "vissl_ext.data.transforms.frames_to_views",
    "vissl_ext.data.video_sources",
    "vissl_ext.data.transforms.box_transforms",
    "vissl_ext.data.transforms.fast_augment",
    "vissl_ext.data.transforms.augment_backend",
    "vissl_ext.data.collators.region_collator",
    "vissl_ext.data.region_pairs",
    "vissl_ext.models.region_trunk",
    "vissl_ext.models.resnet_small",
    "vissl_ext.models.region_head",
    "vissl_ext.losses.temporal_contrastive_loss",
    "vissl_ext.hooks.temporal_contrastive_hook",
    "vissl_ext.hooks.device_augment_hook",
    "vissl_ext.hooks.progress_hook",
    "vissl_ext.data.catalog",
    "vissl_ext.segmentation",
    "vissl_ext.invariance.data_source",
    "vissl_ext.invariance.engine",
]

register_all()
