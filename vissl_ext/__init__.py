"""vissl_ext: the system of "Demystifying Contrastive Self-Supervised Learning" (Purushwalkam &
Gupta, 2020) as a VISSL plugin.

``import vissl_ext`` is light: it imports neither VISSL nor torch, so the offline tools start in
well under a second. It arranges (vissl_ext.utils.host_imports) that the moment vissl or
classy_vision is imported, in this process, the compatibility fixes VISSL needs on this stack are
applied and every component (data sources, transforms, collators, losses, heads, hooks) is
registered, and that detectron2's import registers the segmentation head; already imported: at
once. Idempotent and safe in the worker processes VISSL's launcher spawns.
"""
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


# Modules whose import registers components with VISSL / classy_vision; imported once either is.
# Other projects add theirs with the decorators of vissl_ext.registry instead of editing this list.
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
    "vissl_ext.hooks.tensorboard_hook",
    "vissl_ext.hooks.monitor_hook",
    "vissl_ext.downstream.knn_monitor",
    "vissl_ext.data.catalog",
    "vissl_ext.invariance.data_source",
    "vissl_ext.invariance.engine",
    "vissl_ext.invariance.ris_monitor",
]

# ... and with detectron2 (SEM_SEG_HEADS_REGISTRY); imported once detectron2 is.
_DETECTRON2_MODULES = ["vissl_ext.segmentation"]


def _on_vissl_or_classy():
    from vissl_ext.utils import compat

    compat.apply()
    register_all()


def _on_detectron2():
    # detectron2's __init__ imports only detectron2.utils.env: the segmentation package still
    # applies its detectron2 fixes (d2_compat) before anything imports detectron2.data or .layers
    import importlib

    for mod in _DETECTRON2_MODULES:
        importlib.import_module(mod)


def _early_fixes():
    from vissl_ext.utils import compat

    compat.apply_early()


from vissl_ext.utils import host_imports as _host_imports  # noqa: E402

_host_imports.install(before={"vissl": [_early_fixes], "classy_vision": [_early_fixes], "detectron2": [_early_fixes]},
                      after={"vissl": [_on_vissl_or_classy], "classy_vision": [_on_vissl_or_classy],
                             "detectron2": [_on_detectron2]})
