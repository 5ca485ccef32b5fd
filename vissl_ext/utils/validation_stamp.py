"""The launcher's record of the data files it validated in full (vissl_ext.engines.preflight), so that
the ranks it starts skip the checks it just did on the same bytes instead of repeating them.

The launcher writes ``<checkpoint folder>/preflight_stamp.json`` and points the ranks at it
through the ``VISSL_EXT_PREFLIGHT_STAMP`` environment variable (spawned workers and SLURM jobs
inherit it; a process without it, or with a stamp that does not match, validates in full)::

    {"format": "vissl_ext.preflight_stamp", "version": 1,
     "files": [{"path": "/data/frames/manifest.json", "size": 123456789, "mtime_ns": ...,
                "head_sha256": "<sha256 of the first 64 KiB>"}]}

A file counts as validated when its absolute path, size, mtime_ns and head hash all equal the
record: a rewrite (new mtime or size) or a copy over it with the old mtime (new head) sends the
ranks back to the full check. What the stamp lets a rank skip is only the costly part, every
referenced file's existence; the rank still parses and checks the structure it reads. A file
that disappears afterwards is a counted, logged skip at read time (the data sources' retries).
"""
import hashlib
import json
import logging
import os
from typing import Dict, Iterable

from vissl_ext.utils.atomic_io import write_json_atomic

STAMP_ENV = "VISSL_EXT_PREFLIGHT_STAMP"
STAMP_NAME = "preflight_stamp.json"
FORMAT = "vissl_ext.preflight_stamp"
VERSION = 1
HEAD_BYTES = 64 * 1024



def file_key(path: str) -> dict:
    """What identifies the bytes of ``path`` for the stamp (cheap: one stat, 64 KiB read)."""
    path = os.path.abspath(path)
    st = os.stat(path)
    with open(path, "rb") as f:
        head = hashlib.sha256(f.read(HEAD_BYTES)).hexdigest()
    return {"path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "head_sha256": head}


def _same_file(key: dict) -> bool:
    try:
        return file_key(key["path"]) == key
    except OSError:
        return False


def write_stamp(folder: str, keys: Iterable[dict]) -> str:
    """Record the files validated; returns the stamp's path. Each key is taken with
    :func:`file_key` before its check reads the file, so a file changed during or after the
    check no longer matches its record in the ranks."""
    path = os.path.join(folder, STAMP_NAME)
    write_json_atomic(path, {"format": FORMAT, "version": VERSION, "files": list(keys)}, indent=1)
    return os.path.abspath(path)


def _records(stamp: str) -> Dict[str, dict]:
    try:
        with open(stamp) as f:
            doc = json.load(f)
        if doc.get("format") != FORMAT or doc.get("version") != VERSION:
            raise ValueError(f"not a version {VERSION} {FORMAT}")
        return {r["path"]: r for r in doc["files"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        logging.warning(f"{STAMP_ENV}={stamp}: unreadable preflight stamp ({e}); data files are validated in full")
        return {}


def launcher_validated(path: str) -> bool:
    """True when this process was started by the launcher and its stamp records ``path``
    unchanged (its referenced files were all found just before the ranks started)."""
    stamp = os.environ.get(STAMP_ENV)
    if not stamp:
        return False
    record = _records(stamp).get(os.path.abspath(path))
    if record is None or not _same_file(record):
        return False
    logging.info(f"{path}: unchanged since the launcher found all its files ({stamp}); not checked again")
    return True
