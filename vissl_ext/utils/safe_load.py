"""Loading checkpoints, weights, features and ``.pkl`` files without running code from them.

A pickle can call any Python function while it is read, so a checkpoint from elsewhere is
untrusted input. Every reader in the project goes through here:

- torch files: ``torch.load(weights_only=True)`` (tensors, plain containers), with numpy
  arrays, scalars and dtypes also admitted (the public RIS code saves numpy features);
- ``.pkl`` files (detectron2's model-zoo format): :class:`RestrictedUnpickler`, which admits
  only numpy arrays, scalars, dtypes and plain containers.

Anything else is refused with :class:`UnsafeFileError`: one line naming the file and what it
holds. ``trust_pickle=True`` (the ``--trust-pickle`` flag of the tools) loads a legacy pickle
the old way; it runs whatever code the file carries.
"""
import _compat_pickle
import codecs
import io
import logging
import pickle
import re
import warnings
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

TRUST_PICKLE_HELP = (
    "load checkpoint/weights/feature files with full pickle (torch.load weights_only=False), for legacy "
    "files that hold Python objects besides tensors and arrays. RISK: unpickling runs any code the file "
    "carries, with your permissions; use only for files from a source you trust.")


class UnsafeFileError(ValueError):
    """A file that cannot be loaded without running code from it (or is not a pickle at all)."""


# (module, name) admitted by the .pkl unpickler; numpy < 2 pickles name numpy.core, numpy 2 numpy._core
_NUMPY_GLOBALS = {(m, n) for core in ("numpy.core", "numpy._core")
                  for m, n in ((f"{core}.multiarray", "_reconstruct"), (f"{core}.multiarray", "scalar"),
                               (f"{core}.numeric", "_frombuffer"))}
_NUMPY_GLOBALS |= {("numpy", "ndarray"), ("numpy", "dtype")}
_NUMPY_GLOBALS |= {("numpy.dtypes", n) for n in dir(np.dtypes) if n.endswith("DType")}
_CONTAINER_GLOBALS = {("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"),
                      ("builtins", "slice"), ("builtins", "complex")}


def _latin1_encode(obj, encoding="utf-8", errors="strict"):
    # protocol-2 pickles of bytes (Python 2 model-zoo files, numpy buffers) call
    # _codecs.encode(str, "latin1"); no other codec is needed, so none other is reachable.
    if encoding not in ("latin1", "latin-1") or not isinstance(obj, str):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} is not admitted")
    return codecs.encode(obj, "latin1", errors)


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that constructs only numpy arrays/scalars/dtypes and plain containers."""

    def find_class(self, module, name):
        # Python 2 names (protocol < 3: __builtin__.set, copy_reg, ...) as the stock unpickler maps them
        module, name = _compat_pickle.NAME_MAPPING.get((module, name), (module, name))
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _NUMPY_GLOBALS or (module, name) in _CONTAINER_GLOBALS:
            return super().find_class(module, name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        raise pickle.UnpicklingError(f"global {module}.{name} is not admitted")


def _refuse(path: str, why: str, flag_hint: bool = True) -> UnsafeFileError:
    hint = ", or pass --trust-pickle if you trust its source" if flag_hint else ""
    return UnsafeFileError(f"{path}: refused to load: {why}; loading it could run code from the file. "
                           f"Re-save it as plain tensors/arrays{hint}")


def load_pickle(path: str, trust_pickle: bool = False, encoding: str = "latin1") -> Any:
    """A ``.pkl`` file (detectron2 model-zoo format: dicts of numpy arrays), safely."""
    with open(path, "rb") as f:
        if trust_pickle:
            logger.warning(f"{path}: loading with full pickle (--trust-pickle): it may run code")
            return pickle.load(f, encoding=encoding)
        try:
            data = RestrictedUnpickler(f, encoding=encoding).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
            raise _refuse(path, f"not a pickle of arrays and plain containers ({_one_line(e)})") from None
        if f.read(1):  # a .pkl is one pickle; more (e.g. a legacy torch file) is not what we read
            raise _refuse(path, "more than one pickle in the file (a torch checkpoint? load it as one)")
    return data


def load_npy(path: str, mmap_mode=None) -> np.ndarray:
    """A ``.npy`` array: numeric and string arrays as ``np.load(allow_pickle=False)``; object
    arrays (e.g. VISSL label files with lists) through :class:`RestrictedUnpickler`, so their
    items can only be arrays, numbers, strings and plain containers."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            dtype = read_header(f)[2]
        except ValueError as e:
            raise UnsafeFileError(f"{path}: not a readable .npy file ({_one_line(e)})") from None
        if not dtype.hasobject:
            return np.load(path, mmap_mode=mmap_mode, allow_pickle=False)
        try:
            arr = RestrictedUnpickler(f, encoding="latin1").load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as e:
            raise _refuse(path, f"an object array holding more than arrays, numbers, strings and plain containers "
                                f"({_one_line(e)})", flag_hint=False) from None
    if not isinstance(arr, np.ndarray):
        raise _refuse(path, f"an object array pickled as {type(arr).__name__}", flag_hint=False)
    return arr


def _torch_safe_globals():
    return ([np.ndarray, np.dtype, np._core.multiarray._reconstruct, np._core.multiarray.scalar]
            + [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")])


_TORCH_BOILERPLATE = ("Weights only load failed", "Check the documentation", "Please file an issue", "(1)", "(2)")


def _weights_only_reason(message: str) -> str:
    """The one informative line of torch's long weights_only error."""
    for line in message.splitlines():
        line = line.split("WeightsUnpickler error:", 1)[-1].strip()
        if not line or line.startswith(_TORCH_BOILERPLATE):
            continue
        m = re.search(r"GLOBAL ([\w.]+)", line)
        return f"it names the Python global {m.group(1)}" if m else line
    return "torch.load(weights_only=True) failed"


def _one_line(e: Exception) -> str:
    return " ".join(str(e).split())


def torch_load(path: str, trust_pickle: bool = False, map_location="cpu", mmap: bool = False,
               flag_hint: bool = True) -> Any:
    """A torch checkpoint/weights/features file with ``weights_only=True`` (plus numpy arrays).
    ``mmap``: map tensors of zip-format files instead of reading them (a cheap check);
    ``flag_hint``: the error suggests --trust-pickle (only where the caller offers it)."""
    import zipfile

    import torch

    if trust_pickle:
        logger.warning(f"{path}: loading with full pickle (--trust-pickle): it may run code")
        return torch.load(path, map_location=map_location, weights_only=False)
    try:
        with torch.serialization.safe_globals(_torch_safe_globals()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*")  # refused or fine either way
            return torch.load(path, map_location=map_location, weights_only=True,
                              mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        raise _refuse(path, f"it holds more than tensors, arrays and plain containers ({_weights_only_reason(str(e))})",
                      flag_hint) from None
    except (RuntimeError, EOFError, ValueError) as e:
        if isinstance(e, UnsafeFileError):
            raise
        raise UnsafeFileError(f"{path}: not a readable torch file ({_one_line(e)[:300]})") from None


def torch_load_bytes(data: bytes, map_location="cpu") -> Any:
    """torch.load of bytes received from a peer process, with the same restrictions."""
    import torch

    with torch.serialization.safe_globals(_torch_safe_globals()):
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)


def add_trust_pickle_flag(parser) -> None:
    """``--trust-pickle`` on a tool's argparse parser (help states the risk)."""
    parser.add_argument("--trust-pickle", action="store_true", help=TRUST_PICKLE_HELP)
