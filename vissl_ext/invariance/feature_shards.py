"""RIS features extracted in shards (``compute_ris.py torchvision --shard i/n`` or ``--slurm``).

Shard i of n holds a contiguous block of the manifest's rows, whole batches of the
single-process route (:func:`shard_rows`: CPU kernels give a batch of one image other bits
than a larger batch, so shards cut at other rows would differ in the last bits), in
``<shards folder>/rows_<i>-of-<n>.npy`` with a record ``rows_<i>-of-<n>.json``: its rows, the
fingerprint of the model's weights, the layer, image and batch size and the manifest's images,
both written atomically (the record last). A shard file without a matching record, or one that does
not load (truncated), is moved aside to ``<name>.bad`` (logged) and extracted again; a valid
one is reused. The merge checks every record against the model being scored, so shards of
different weights (a changed file, an unseeded random init) are refused rather than mixed, and
concatenates them in order into the single-process route's file through a memory map (RAM
holds one block of rows, not the matrix).
"""
import hashlib
import json
import logging
import os
from typing import Callable, Optional, Tuple

import numpy as np

from vissl_ext.cli.common import shard_range
from vissl_ext.invariance.features_io import FeatureFileError
from vissl_ext.cli.shard_jobs import marker_path
from vissl_ext.utils.atomic_io import write_json_atomic

RIS_CLI = "vissl_ext.invariance.ris_cli"  # the tool whose --slurm markers these are


def shards_folder(features_path: str) -> str:
    """Where the shards of ``features_<model>__<set>_<layer>.npy`` go (beside it)."""
    return os.path.splitext(features_path)[0] + "_shards"


def shard_file(folder: str, shard: int, num_shards: int) -> str:
    return os.path.join(folder, f"rows_{shard}-of-{num_shards}.npy")


def model_fingerprint(model) -> str:
    """SHA-256 of the state dict (names and values): equal exactly when the weights are."""
    h = hashlib.sha256()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().reshape(-1).numpy().tobytes())
    return h.hexdigest()


def num_batches(num_images: int, batch_size: int) -> int:
    """The most shards there can be: one batch each."""
    return -(-num_images // batch_size)


def shard_rows(num_images: int, batch_size: int, shard: int, num_shards: int) -> range:
    """The rows of shard ``shard``: a contiguous block of whole batches of ``batch_size``."""
    b = shard_range(num_batches(num_images, batch_size), shard, num_shards)
    return range(b.start * batch_size, min(b.stop * batch_size, num_images))


def shard_settings(manifest, model, layer: str, image_size: int, batch_size: int) -> dict:
    """What a shard's rows depend on besides their range: recorded with it, checked on reuse and merge."""
    images = [[e.image, None if e.box is None else [float(b) for b in e.box]] for e in manifest.entries]
    return {"model": model_fingerprint(model), "layer": layer, "image_size": int(image_size),
            "batch_size": int(batch_size), "images": hashlib.sha256(json.dumps(images).encode()).hexdigest(),
            "num_images": len(images)}


def _expect(settings: dict, shard: int, num_shards: int) -> dict:
    rows = shard_rows(settings["num_images"], settings["batch_size"], shard, num_shards)
    return {**settings, "rows": [rows.start, rows.stop]}


def read_shard(folder: str, shard: int, num_shards: int, settings: dict) -> Tuple[Optional[np.ndarray], str]:
    """(features memory-mapped, "") for a complete shard made with ``settings``, else (None, why)."""
    path = shard_file(folder, shard, num_shards)
    record = os.path.splitext(path)[0] + ".json"
    expect = _expect(settings, shard, num_shards)
    if not os.path.exists(path):
        return None, f"{path} is missing"
    try:
        with open(record) as f:
            rec = json.load(f)
    except FileNotFoundError:
        return None, f"{path} has no record {os.path.basename(record)} (stopped while writing it?)"
    except (OSError, ValueError) as e:
        return None, f"{record} is unreadable ({e})"
    other = [k for k in expect if rec.get(k) != expect[k]]
    if other:
        return None, f"{path} was made with another {', '.join(other)} ({', '.join(str(rec.get(k)) for k in other)})"
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        return None, f"{path} does not load ({e}): truncated?"
    want = (expect["rows"][1] - expect["rows"][0], rec.get("dim"))
    if x.shape != want or x.dtype != np.float32:
        return None, f"{path} holds {x.dtype} {x.shape}, its record says float32 {want}"
    return x, ""


def extract_shard(extract: Callable[[str, range], np.ndarray], folder: str, shard: int, num_shards: int,
                  settings: dict) -> dict:
    """Shard ``shard`` of ``num_shards`` by ``extract(path, rows)`` unless a valid one is there."""
    path = shard_file(folder, shard, num_shards)
    expect = _expect(settings, shard, num_shards)
    x, why = read_shard(folder, shard, num_shards, settings)
    if x is None and os.path.exists(path):
        logging.warning(f"{why}: moved aside to {path}.bad, extracting shard {shard}/{num_shards} again")
        os.replace(path, path + ".bad")
    reused = x is not None
    if reused:
        logging.info(f"{path}: shard {shard}/{num_shards} already extracted, reused")
    else:
        os.makedirs(folder, exist_ok=True)
        x = extract(path, range(*expect["rows"]))
        write_json_atomic(os.path.splitext(path)[0] + ".json", {**expect, "dim": int(x.shape[1])}, indent=1)
    return {"ok": True, "shard": f"{shard}/{num_shards}", "rows": expect["rows"], "features": path,
            "reused": reused}


def shard_counts(folder: str) -> dict:
    """{n: [i, ...]} of the shard files in ``folder``."""
    found: dict = {}
    for name in os.listdir(folder) if os.path.isdir(folder) else []:
        stem, ext = os.path.splitext(name)
        if ext == ".npy" and stem.startswith("rows_") and "-of-" in stem:
            try:
                i, n = (int(v) for v in stem[len("rows_"):].split("-of-"))
            except ValueError:
                continue
            found.setdefault(n, []).append(i)
    return {n: sorted(v) for n, v in found.items()}


def merge_shards(folder: str, num_shards: int, out_path: str, settings: dict, block_rows: int = 4096) -> np.ndarray:
    """The shards concatenated into ``out_path`` (.npy, atomically), rows checked against the
    manifest; then the shard files and their done markers are removed. Returns it memory-mapped."""
    parts = []
    for i in range(num_shards):
        x, why = read_shard(folder, i, num_shards, settings)
        if x is None:
            raise FeatureFileError(f"cannot merge shard {i}/{num_shards}: {why}; extract it again (--shard "
                                   f"{i}/{num_shards}, or rerun --slurm after deleting {marker_path(folder, i, num_shards, RIS_CLI)})")
        parts.append(x)
    dims = {x.shape[1] for x in parts}
    rows = sum(len(x) for x in parts)
    if len(dims) != 1 or rows != settings["num_images"]:
        raise FeatureFileError(f"{folder}: shards of {rows} rows and widths {sorted(dims)}; the manifest lists "
                               f"{settings['num_images']} images")
    tmp = out_path + ".partial.npy"
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(rows, dims.pop()))
    r = 0
    for x in parts:
        for s in range(0, len(x), block_rows):
            block = x[s:s + block_rows]
            out[r:r + len(block)] = block
            r += len(block)
    out.flush()
    del out, parts
    os.replace(tmp, out_path)
    for i in range(num_shards):  # the merged file is the result now: a rerun reuses it, never stale shards
        path = shard_file(folder, i, num_shards)
        for p in (path, os.path.splitext(path)[0] + ".json", marker_path(folder, i, num_shards, RIS_CLI)):
            if os.path.exists(p):
                os.remove(p)
    logging.info(f"merged {num_shards} shards into {out_path} ({rows} rows)")
    return np.load(out_path, mmap_mode="r", allow_pickle=False)
