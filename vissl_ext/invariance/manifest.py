"""RIS manifest: one JSON file listing every image of an invariance set with its optional box,
its trajectory and its class. Every builder writes it; the VISSL data source, the torchvision
extractor and tools/compute_ris.py read it.

    {"format": "vissl_ext.ris_manifest", "version": 1, "set": "aloi_viewpoint",
     "invariance": "viewpoint", "image_size": 128,
     "entries": [{"image": "1/1_r0.png", "box": null, "trajectory": "1", "class": "1"}, ...]}

``image`` is relative to the manifest's folder (or absolute); ``box`` is [x, y, w, h] in pixels
(GOT-10k's convention), cropped before resizing; ``meta`` (optional) holds builder details.
"""
import json
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from vissl_ext.utils.atomic_io import check_file_id, write_json_atomic

FORMAT = "vissl_ext.ris_manifest"
VERSION = 1
ENTRY_KEYS = {"image", "box", "trajectory", "class", "meta"}
TOP_KEYS = {"format", "version", "set", "invariance", "image_size", "entries", "skipped", "source"}


class RISManifestError(ValueError):
    """A RIS manifest (or a dataset layout a builder reads) that cannot be used; the message
    names the file and the fix. Video manifests have their own: data.manifest.VideoManifestError."""


@dataclass
class RISEntry:
    image: str
    trajectory: str
    cls: str
    box: Optional[Sequence[float]] = None
    meta: Dict = field(default_factory=dict)

    def to_json(self, root: str) -> dict:
        img = self.image
        if root and os.path.isabs(img) and os.path.commonpath([os.path.abspath(root), img]) == os.path.abspath(root):
            img = os.path.relpath(img, root)
        out = {"image": img, "box": None if self.box is None else [float(v) for v in self.box],
               "trajectory": str(self.trajectory), "class": str(self.cls)}
        if self.meta:
            out["meta"] = self.meta
        return out


@dataclass
class RISManifest:
    entries: List[RISEntry]
    set: str = "custom"
    invariance: str = "custom"
    image_size: int = 224
    skipped: Dict[str, int] = field(default_factory=dict)
    source: str = ""
    path: str = ""

    @property
    def trajectories(self) -> List[str]:
        return [e.trajectory for e in self.entries]

    @property
    def classes(self) -> List[str]:
        return [e.cls for e in self.entries]

    def save(self, path: str):
        root = os.path.dirname(os.path.abspath(path))
        write_json_atomic(path, {
            "format": FORMAT, "version": VERSION, "set": self.set, "invariance": self.invariance,
            "image_size": int(self.image_size), "source": self.source, "skipped": dict(self.skipped),
            "entries": [e.to_json(root) for e in self.entries],
        }, indent=1)
        self.path = os.path.abspath(path)


def _check_box(box, where: str):
    if box is None:
        return None
    if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
        raise RISManifestError(f"{where}: box must be [x, y, w, h] numbers or null, got {box!r}")
    if not (box[2] > 0 and box[3] > 0):
        raise RISManifestError(f"{where}: box {box} has no area (w and h must be > 0); drop the entry or fix the box")
    return [float(v) for v in box]


def load_ris_manifest(path: str) -> RISManifest:
    """Read and validate a manifest; errors name the file, the entry and the fix."""
    if os.path.isdir(path):
        path = os.path.join(path, "manifest.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise RISManifestError(f"{path}: no such manifest; write one with tools/build_ris_trajectories.py") from None
    except json.JSONDecodeError as e:
        raise RISManifestError(f"{path}: not valid JSON ({e}); rebuild it with tools/build_ris_trajectories.py") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise RISManifestError(f"{path}: not a RIS manifest (expected \"format\": \"{FORMAT}\"); "
                            "write one with tools/build_ris_trajectories.py")
    if data.get("version") != VERSION:
        raise RISManifestError(f"{path}: manifest version {data.get('version')!r}, this code reads version {VERSION}")
    unknown = set(data) - TOP_KEYS
    if unknown:
        raise RISManifestError(f"{path}: unknown top-level keys {sorted(unknown)}; known: {sorted(TOP_KEYS)}")
    root = os.path.dirname(os.path.abspath(path))
    entries = []
    for i, e in enumerate(data.get("entries") or []):
        where = f"{path}: entry {i}"
        if not isinstance(e, dict):
            raise RISManifestError(f"{where}: must be an object with keys {sorted(ENTRY_KEYS)}")
        unknown = set(e) - ENTRY_KEYS
        if unknown:
            raise RISManifestError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(ENTRY_KEYS)} "
                                "(put extra information under \"meta\")")
        missing = {"image", "trajectory", "class"} - set(e)
        if missing:
            raise RISManifestError(f"{where}: missing keys {sorted(missing)}")
        img = e["image"]
        if not isinstance(img, str) or not img:
            raise RISManifestError(f"{where}: image must be a path, got {img!r}")
        entries.append(RISEntry(image=img if os.path.isabs(img) else os.path.join(root, img),
                                trajectory=str(e["trajectory"]), cls=str(e["class"]),
                                box=_check_box(e.get("box"), where), meta=e.get("meta") or {}))
    if not entries:
        raise RISManifestError(f"{path}: the manifest lists no image")
    set_name = check_file_id(str(data.get("set", "custom")), f"{path}: set", RISManifestError)  # names result files
    size = data.get("image_size", 224)
    if not isinstance(size, int) or size <= 0:
        raise RISManifestError(f"{path}: image_size must be a positive integer, got {size!r}")
    return RISManifest(entries=entries, set=set_name,
                       invariance=str(data.get("invariance", "custom")), image_size=size,
                       skipped=dict(data.get("skipped") or {}), source=str(data.get("source", "")),
                       path=os.path.abspath(path))
