"""vissl_ext: the system of "Demystifying Contrastive Self-Supervised Learning" (Purushwalkam &
Gupta, 2020) as a VISSL plugin.

``import vissl_ext`` applies the compatibility fixes VISSL needs on this stack and registers
every component (data sources, transforms, collators, losses, heads, hooks) with VISSL. It is
idempotent and safe in the worker processes VISSL's launcher spawns.
"""
from vissl_ext import compat as _compat

_compat.apply()

__version__ = "0.1.0"

_REGISTERED = False


def register_all():
    """Import every module that registers something with VISSL (idempotent)."""
    global _REGISTERED
    if _REGISTERED:
        return
    import importlib

    for mod in _COMPONENT_MODULES:
        importlib.import_module(mod)
    _REGISTERED = True


# Modules whose import registers components. Other projects add theirs with the decorators of
# vissl_ext.registry instead of editing this list.
_COMPONENT_MODULES = [
    "vissl_ext.data.transforms",
    "vissl_ext.data.video_sources",
    "vissl_ext.data.catalog",
]

register_all()
