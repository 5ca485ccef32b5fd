"""Atomic file writes (a reader never sees a half-written file, a crash never leaves one, the
final file gets the mode the user's umask gives) and the check that an id can name a file."""
import json
import os
import tempfile
import threading
from contextlib import contextmanager

_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read from /proc (Linux) without changing it; elsewhere os.umask can
    only be read by setting it: set to the restrictive 077 and restored at once, under a lock."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


@contextmanager
def atomic_open(path: str, mode: str = "w", **kwargs):
    """Write to a temporary file beside ``path`` and rename it over ``path`` on success. The
    file gets mode 0666 & ~umask, as open() would give it (mkstemp creates 0600)."""
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fchmod(f.fileno(), 0o666 & ~current_umask())
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_json_atomic(path: str, obj, indent=None):
    with atomic_open(path, "w") as f:
        json.dump(obj, f, indent=indent)


def check_file_id(file_id, where: str, error=ValueError) -> str:
    """``file_id`` (a video id of a manifest or tracks index) names files as ``<out>/<id>.<ext>``:
    it must be a non-empty string, not absolute, without a path separator and not '.'/'..',
    or a crafted file would make the tools write outside their output folder."""
    seps = {"/", "\\", os.sep} | ({os.altsep} if os.altsep else set())
    if (not isinstance(file_id, str) or file_id in ("", ".", "..") or os.path.isabs(file_id)
            or any(s in file_id for s in seps) or "\0" in file_id):
        raise error(f"{where}: id {file_id!r} cannot name a file (absolute, a path separator, '.' or '..'); "
                         "ids written by tools/extract_frames.py are safe: regenerate the file")
    return file_id
