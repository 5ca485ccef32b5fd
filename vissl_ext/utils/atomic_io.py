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


def append_jsonl(path: str, records) -> None:
    """Append ``records`` as JSON lines with one write, flushed and fsynced: a kill leaves them
    all or, at worst, one cut last line, which :func:`read_jsonl` skips. A cut line left by an
    earlier kill is ended first, so the new lines stay whole."""
    data = "".join(json.dumps(r, sort_keys=True) + "\n" for r in records).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    try:
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as f:
                f.seek(size - 1)
                if f.read(1) != b"\n":
                    data = b"\n" + data
        while data:  # a regular file takes it in one write; a short write continues
            data = data[os.write(fd, data):]
        os.fsync(fd)
    finally:
        os.close(fd)


def read_jsonl(path: str) -> list:
    """The JSON objects of a JSON-lines file ([] when absent); lines that do not parse (a write
    cut by a kill) are skipped."""
    out = []
    try:
        with open(path, "rb") as f:
            for line in f:
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict):
                    out.append(obj)
    except FileNotFoundError:
        pass
    return out
