"""detectron2's checkpointer without unpickling code: ``.pkl`` weights go through
:class:`vissl_ext.utils.safe_load.RestrictedUnpickler` (numpy arrays, dtypes, plain containers) and
``.pth`` checkpoints through ``torch.load(weights_only=True)``, each refused with one line naming
the file. :func:`install` patches detectron2 v0.6 / fvcore in the calling process (every
detectron2 worker calls it); ``trust_pickle=True`` restores full unpickling (--trust-pickle).
"""
import types

from vissl_ext.utils.safe_load import load_pickle, torch_load

_STATE = {"trust_pickle": False}


def _pickle_load(f, encoding="latin1"):
    # detectron2's DetectionCheckpointer._load_file reads model-zoo .pkl files with
    # pickle.load(f, encoding="latin1") on a file it opened: same call, restricted unpickler.
    return load_pickle(f.name, trust_pickle=_STATE["trust_pickle"], encoding=encoding)


def _fvcore_load_file(self, f):
    # fvcore's Checkpointer._load_file (native .pth checkpoints of detectron2 and its resume)
    return torch_load(self.path_manager.get_local_path(f), trust_pickle=_STATE["trust_pickle"])


def install(trust_pickle: bool = False) -> None:
    """Route detectron2's checkpoint loading through vissl_ext.utils.safe_load (idempotent)."""
    import fvcore.common.checkpoint as fv
    from detectron2.checkpoint import detection_checkpoint as dc

    _STATE["trust_pickle"] = bool(trust_pickle)
    if not getattr(dc.pickle, "_vissl_ext", False):
        dc.pickle = types.SimpleNamespace(load=_pickle_load, _vissl_ext=True)
    fv.Checkpointer._load_file = _fvcore_load_file
