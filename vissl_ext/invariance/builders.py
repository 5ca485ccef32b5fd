"""Trajectory builders: native dataset layouts -> RIS manifest (vissl_ext.invariance.manifest).

Each follows the public code's selection (github.com/senthilps8/demystifyssl,
extract_features/*): same images, same grouping, same seed. Problems are counted per reason in
``manifest.skipped`` and logged, never silently dropped.
"""
import glob
import logging
import os
import re
from collections import Counter
from typing import Dict, Iterable, List, Optional

import numpy as np
from tqdm import tqdm

from vissl_ext.invariance.images import IMAGE_EXTENSIONS, verify_image
from vissl_ext.invariance.manifest import RISManifestError, RISEntry, RISManifest
from vissl_ext.invariance.sets import DEFAULT_IMAGE_SIZE, SETS


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _skip(skipped: Counter, reason: str, what: str, examples: Dict[str, List[str]]):
    skipped[reason] += 1
    examples.setdefault(reason, [])
    if len(examples[reason]) < 3:
        examples[reason].append(what)


def _log_skips(name: str, skipped: Counter, examples: Dict[str, List[str]]):
    for reason, n in skipped.items():
        logging.warning(f"{name}: skipped {n} ({reason}), e.g. {examples.get(reason, [])}")


# ------------------------------------------------------------------------------------------ ALOI
# file names of the three ALOI collections (aloi_red*_view / _ill / _col): <obj>_r<deg>.png,
# <obj>_l<light>c<camera>.png, <obj>_i<colour temperature>.png
ALOI_PATTERNS = {
    "viewpoint": re.compile(r"^\d+_r\d+\.\w+$"),
    "illumination_direction": re.compile(r"^\d+_l\d+c\d+\.\w+$"),
    "illumination_color": re.compile(r"^\d+_i\d+\.\w+$"),
}


def _aloi_root(root: str) -> str:
    """The folder holding the numbered object folders (accepts the tar's png*/ parent too)."""
    subs = [d for d in sorted(os.listdir(root)) if os.path.isdir(os.path.join(root, d))]
    if not any(d.isdigit() for d in subs):
        inner = [d for d in subs if d.startswith("png")]
        if len(inner) == 1:
            return _aloi_root(os.path.join(root, inner[0]))
        raise RISManifestError(f"{root}: no numbered ALOI object folders (1/, 2/, ...) here; pass the folder "
                            "extracted from aloi_red*_view|ill|col.tar (e.g. png4/)")
    return root


def build_aloi(root: str, invariance: Optional[str] = None) -> RISManifest:
    """ALOI: every object is one trajectory and one class; all its images (sorted names), as
    extract_generic_ALOI_features.py. ``invariance`` (viewpoint | illumination_direction |
    illumination_color) is checked against the file names, or inferred from them."""
    root = _aloi_root(os.path.abspath(root))
    objects = sorted((d for d in os.listdir(root) if d.isdigit() and os.path.isdir(os.path.join(root, d))), key=int)
    entries, kinds = [], Counter()
    skipped, examples = Counter(), {}
    for obj in objects:
        for name in sorted(os.listdir(os.path.join(root, obj))):
            if not _is_image(name):
                continue
            kind = next((k for k, p in ALOI_PATTERNS.items() if p.match(name)), None)
            if kind is None:
                _skip(skipped, "not an ALOI image name", os.path.join(obj, name), examples)
                continue
            kinds[kind] += 1
            entries.append(RISEntry(image=os.path.join(root, obj, name), trajectory=obj, cls=obj))
    if not entries:
        raise RISManifestError(f"{root}: no ALOI images (<obj>/<obj>_r0.png, _l1c1.png or _i110.png)")
    if len(kinds) > 1:
        raise RISManifestError(f"{root}: mixes ALOI collections {dict(kinds)}; point at one extracted tar "
                            "(aloi_red*_view, _ill or _col)")
    found = next(iter(kinds))
    if invariance is not None and invariance != found:
        raise RISManifestError(f"{root}: the file names are the {found} collection, not {invariance} "
                            f"(e.g. {os.path.basename(entries[0].image)})")
    _log_skips("ALOI", skipped, examples)
    name = f"aloi_{found}"
    return RISManifest(entries=entries, set=name, invariance=found, image_size=SETS[name][1],
                       skipped=dict(skipped), source=root)


# --------------------------------------------------------------------------------------- GOT-10k
def _read_lines(path: str) -> List[str]:
    with open(path) as f:
        return [line.strip() for line in f.read().splitlines()]


def _got_object_class(meta_path: str) -> str:
    # meta_info.ini: "[METAINFO]" then "key: value" lines; the class is object_class, spaces
    # replaced by underscores (as the public code)
    for line in _read_lines(meta_path)[1:]:
        if "object_class" in line and ": " in line:
            return line.split(": ", 1)[1].replace(" ", "_")
    raise RISManifestError(f"{meta_path}: no 'object_class: ...' line; is this a GOT-10k sequence folder?")


def _got_resolution(meta_path: str):
    for line in _read_lines(meta_path):
        if line.startswith("resolution:"):
            nums = re.findall(r"\d+", line)
            if len(nums) == 2:
                return int(nums[0]), int(nums[1])
    return None


def build_got10k(root: str, seed: int = 1992, min_cover_span: int = 4, stride: int = 1,
                 max_videos: Optional[int] = None) -> RISManifest:
    """GOT-10k occlusion: videos whose cover.label levels span >= ``min_cover_span`` (max - min);
    one random frame (seeded, same draws as the public code) per cover level, cropped to its
    box. Class = the video's object_class; each video one trajectory."""
    from PIL import Image

    root = os.path.abspath(root)
    list_file = os.path.join(root, "list.txt")
    if os.path.isfile(list_file):
        vids = [v for v in _read_lines(list_file) if v]
    else:
        vids = sorted(d for d in os.listdir(root) if os.path.isfile(os.path.join(root, d, "groundtruth.txt")))
    if not vids:
        raise RISManifestError(f"{root}: no GOT-10k sequences (folders with groundtruth.txt, or list.txt)")
    if max_videos and len(vids) > max_videos:
        vids = vids[::len(vids) // max_videos]
    rng = np.random.RandomState(seed)  # legacy generator: the public code's np.random.seed(1992)
    entries = []
    skipped, examples = Counter(), {}
    for vid in tqdm(vids, desc="GOT-10k sequences"):
        vdir = os.path.join(root, vid)
        gt_path = os.path.join(vdir, "groundtruth.txt")
        if not os.path.isfile(gt_path):
            _skip(skipped, "no groundtruth.txt", vid, examples)
            continue
        box_lines = _read_lines(gt_path)
        num = len(box_lines)
        cover_path = os.path.join(vdir, "cover.label")
        if not os.path.isfile(cover_path):
            _skip(skipped, "no cover.label", vid, examples)
            continue
        try:
            cover = np.array(list(map(int, _read_lines(cover_path))))[::stride]
            boxes = [list(map(float, b.split(","))) for b in box_lines][::stride]
        except ValueError as e:
            raise RISManifestError(f"{vdir}: unreadable groundtruth.txt or cover.label ({e})") from None
        if len(cover) != len(boxes):
            raise RISManifestError(f"{vdir}: cover.label has {len(cover)} lines, groundtruth.txt {len(boxes)} "
                                "(after stride); the two must describe the same frames")
        frames = [i + 1 for i in range(num)][::stride]
        levels = np.unique(cover)
        if levels.max() - levels.min() < min_cover_span:
            _skip(skipped, f"cover levels span < {min_cover_span}", vid, examples)
            continue
        chosen = [rng.choice(np.where(cover == c)[0]) for c in levels]  # same draws as the public code
        meta_path = os.path.join(vdir, "meta_info.ini")
        if not os.path.isfile(meta_path):
            raise RISManifestError(f"{vdir}: no meta_info.ini (holds object_class, the class of the sequence)")
        cls = _got_object_class(meta_path)
        size = _got_resolution(meta_path)
        for level, i in zip(levels, chosen):
            image = os.path.join(vdir, f"{frames[i]:08d}.jpg")
            box = boxes[i]
            if size is None:
                try:
                    with Image.open(image) as im:
                        size = im.size
                except OSError:
                    _skip(skipped, "unreadable image", image, examples)
                    continue
            x, y, w, h = box
            if not (w > 0 and h > 0 and x < size[0] and y < size[1] and x + w > 0 and y + h > 0):
                _skip(skipped, "box empty or outside the image", f"{image} {box}", examples)
                continue
            entries.append(RISEntry(image=image, box=box, trajectory=vid, cls=cls,
                                    meta={"cover": int(level), "frame": frames[i]}))
    _log_skips("GOT-10k", skipped, examples)
    if not entries:
        raise RISManifestError(f"{root}: no GOT-10k sequence qualifies (cover levels spanning >= {min_cover_span}); "
                            f"skipped: {dict(skipped)}")
    return RISManifest(entries=entries, set="got10k_occlusion", invariance="occlusion",
                       image_size=SETS["got10k_occlusion"][1], skipped=dict(skipped), source=root)


# ------------------------------------------------------------------------------------- PASCAL3D+
def _pascal3d_records(root: str):
    """(class, image path, annotation path, object index) in the public code's order: every
    class's ImageNet train then val images (object 0), then every class's PASCAL images."""
    sets_dir = os.path.join(root, "Image_sets")
    lists = sorted(glob.glob(os.path.join(sets_dir, "*imagenet_train.txt")))
    if not lists:
        raise RISManifestError(f"{root}: no Image_sets/<class>_imagenet_train.txt; pass the PASCAL3D+_release1.1 folder")
    classes = [os.path.basename(p).split("_")[0] for p in lists]
    out = []
    for cls in classes:
        for part in ("train", "val"):
            path = os.path.join(sets_dir, f"{cls}_imagenet_{part}.txt")
            if not os.path.isfile(path):
                continue
            for name in filter(None, _read_lines(path)):
                out.append((cls, os.path.join(root, "Images", f"{cls}_imagenet", f"{name}.JPEG"),
                            os.path.join(root, "Annotations", f"{cls}_imagenet", f"{name}.mat"), 0))
    for cls in classes:
        path = os.path.join(sets_dir, f"{cls}_pascal.txt")
        if not os.path.isfile(path):
            continue
        for line in filter(None, _read_lines(path)):
            parts = line.split(" ")
            name, obj = parts[0], int(parts[1]) if len(parts) > 1 else 0
            out.append((cls, os.path.join(root, "Images", f"{cls}_pascal", f"{name}.jpg"),
                        os.path.join(root, "Annotations", f"{cls}_pascal", f"{name}.mat"), obj))
    return out


def _pascal3d_annotation(mat_path: str, obj: int):
    """(box [x, y, w, h], azimuth_coarse, elevation_coarse) of object ``obj`` of a .mat record."""
    import scipy.io as sio

    rec = sio.loadmat(mat_path, struct_as_record=False)["record"][0, 0]
    o = rec.objects[0, obj]
    x1, y1, x2, y2 = [float(v) for v in np.asarray(o.bbox).ravel()[:4]]
    vp = o.viewpoint[0, 0]
    return [x1, y1, x2 - x1, y2 - y1], float(np.asarray(vp.azimuth_coarse).ravel()[0]), \
        float(np.asarray(vp.elevation_coarse).ravel()[0])


def build_pascal3d(root: str, invariance: str = "instance") -> RISManifest:
    """PASCAL3D+ (ImageNet and PASCAL parts), objects cropped to their boxes; class = category.

    instance: a trajectory = the images of one category in one azimuth bin ((az mod 180) // 30)
    and one elevation bin ((el mod 90) // 30): instance changes only.
    instance_viewpoint: per category, the j-th image of every azimuth bin forms trajectory j:
    different instances under different viewpoints. Both exactly as the public code.
    """
    if invariance not in ("instance", "instance_viewpoint"):
        raise ValueError(f"PASCAL3D+ invariance must be 'instance' or 'instance_viewpoint', got {invariance!r}")
    root = os.path.abspath(root)
    records = []
    skipped, examples = Counter(), {}
    for cls, image, mat, obj in tqdm(_pascal3d_records(root), desc="PASCAL3D+ annotations"):
        try:
            box, az, el = _pascal3d_annotation(mat, obj)
        except FileNotFoundError:
            _skip(skipped, "no annotation .mat", mat, examples)
            continue
        except (KeyError, IndexError, AttributeError, ValueError, TypeError) as e:
            _skip(skipped, f"annotation without box/viewpoint ({type(e).__name__})", f"{mat}#{obj}", examples)
            continue
        if not (box[2] > 0 and box[3] > 0):
            _skip(skipped, "box empty", f"{mat}#{obj} {box}", examples)
            continue
        records.append((cls, image, box, int((az % 180) // 30), int((el % 90) // 30), az, el))
    if not records:
        raise RISManifestError(f"{root}: no usable PASCAL3D+ object; skipped: {dict(skipped)}")
    classes = sorted(set(r[0] for r in records))  # np.unique order
    traj = [None] * len(records)
    if invariance == "instance_viewpoint":
        count = np.zeros(6)
        for cls in classes:
            count = np.ones(6) * np.amax(count)  # ids continue after the previous class's
            for i, r in enumerate(records):
                if r[0] == cls:
                    traj[i] = int(count[r[3]])
                    count[r[3]] += 1
    else:
        base = 0
        for cls in classes:
            idx = [i for i, r in enumerate(records) if r[0] == cls]
            pairs = sorted(set((records[i][3], records[i][4]) for i in idx))
            for i in idx:
                traj[i] = base + pairs.index((records[i][3], records[i][4]))
            base += len(pairs)
    entries = [RISEntry(image=r[1], box=r[2], trajectory=str(t), cls=r[0],
                        meta={"azimuth": r[5], "elevation": r[6], "azimuth_bin": r[3], "elevation_bin": r[4]})
               for r, t in zip(records, traj)]
    _log_skips("PASCAL3D+", skipped, examples)
    name = f"pascal3d_{invariance}"
    return RISManifest(entries=entries, set=name, invariance=invariance, image_size=SETS[name][1],
                       skipped=dict(skipped), source=root)


# ---------------------------------------------------------------------- generic folder layout
_LAYOUT_ADVICE = ("arrange the images as root/<trajectory>/*.jpg (class = trajectory) or "
                  "root/<class>/<trajectory>/*.jpg, or list them in a CSV with the columns file,trajectory,class "
                  "(tools/build_ris_trajectories.py folders ROOT --csv labels.csv)")


def _need_two_classes(root: str, entries: List[RISEntry], how: str):
    """RIS's firing percentile is (1 - 1/|Y|)*100: one class makes every unit fire everywhere."""
    classes = {e.cls for e in entries}
    if len(classes) < 2:
        raise RISManifestError(f"{root}: {how} gives {len(entries)} images in {len({e.trajectory for e in entries})} "
                            f"trajectories and 1 class ({next(iter(classes))!r}); RIS compares trajectories across "
                            f"at least 2 classes: {_LAYOUT_ADVICE}")


def build_folders(root: str, invariance: str = "custom", image_size: int = DEFAULT_IMAGE_SIZE) -> RISManifest:
    """Own data, one folder per trajectory: ``root/<trajectory>/*.jpg`` (class = trajectory) or
    ``root/<class>/<trajectory>/*.jpg``. Frame folders of tools/extract_frames.py fit the first.
    A flat folder of images (no trajectories, no classes) is refused: give a CSV (build_csv)."""
    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{root} is not a folder")
    flat = [n for n in os.listdir(root) if _is_image(n) and os.path.isfile(os.path.join(root, n))]
    if flat:
        raise RISManifestError(f"{root}: {len(flat)} images lie directly in this folder, which says nothing about "
                            f"trajectories or classes; {_LAYOUT_ADVICE}")
    entries = []
    skipped, examples = Counter(), {}
    for top in sorted(os.listdir(root)):
        tdir = os.path.join(root, top)
        if not os.path.isdir(tdir):
            continue
        names = sorted(os.listdir(tdir))
        images = [n for n in names if _is_image(n) and os.path.isfile(os.path.join(tdir, n))]
        subdirs = [n for n in names if os.path.isdir(os.path.join(tdir, n))]
        if images and subdirs:
            raise RISManifestError(f"{tdir}: holds both images and folders; use root/<trajectory>/images or "
                                "root/<class>/<trajectory>/images, not both")
        if images:
            entries += [RISEntry(image=os.path.join(tdir, n), trajectory=top, cls=top) for n in images]
        for sub in subdirs:
            sdir = os.path.join(tdir, sub)
            imgs = sorted(n for n in os.listdir(sdir) if _is_image(n))
            if not imgs:
                _skip(skipped, "folder without images", sdir, examples)
            entries += [RISEntry(image=os.path.join(sdir, n), trajectory=f"{top}/{sub}", cls=top) for n in imgs]
        if not images and not subdirs:
            _skip(skipped, "folder without images", tdir, examples)
    if not entries:
        raise RISManifestError(f"{root}: no images in root/<trajectory>/ or root/<class>/<trajectory>/ folders; "
                            f"{_LAYOUT_ADVICE}")
    _need_two_classes(root, entries, "the folder layout")
    _log_skips("folders", skipped, examples)
    return RISManifest(entries=entries, set=os.path.basename(os.path.abspath(root)) or "custom", invariance=invariance,
                       image_size=image_size, skipped=dict(skipped), source=root)


CSV_COLUMNS = ("file", "trajectory", "class")


def build_csv(root: str, csv_path: str, invariance: str = "custom", image_size: int = DEFAULT_IMAGE_SIZE) -> RISManifest:
    """Own data as a flat folder plus a CSV with a header row and the columns ``file`` (relative
    to ``root``, or absolute), ``trajectory`` and ``class`` (other columns are ignored), the usual
    shape of multi-view datasets. Listed files that do not exist are counted and skipped; images
    of the folder that the CSV does not list are counted and logged."""
    import csv

    root = os.path.abspath(root)
    if not os.path.isdir(root):
        raise NotADirectoryError(f"{root} is not a folder")
    if not os.path.isfile(csv_path):
        raise FileNotFoundError(f"CSV {csv_path} does not exist")
    entries, listed = [], set()
    skipped, examples = Counter(), {}
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        missing = [c for c in CSV_COLUMNS if c not in header]
        if missing:
            raise RISManifestError(f"{csv_path}: the header row {reader.fieldnames} lacks the columns {missing}; "
                                f"expected {','.join(CSV_COLUMNS)}")
        reader.fieldnames = header
        for line, row in enumerate(reader, start=2):
            vals = {c: (row.get(c) or "").strip() for c in CSV_COLUMNS}
            empty = [c for c, v in vals.items() if not v]
            if empty:
                raise RISManifestError(f"{csv_path}, line {line}: empty {empty}; every row needs file, trajectory and class")
            path = vals["file"] if os.path.isabs(vals["file"]) else os.path.join(root, vals["file"])
            listed.add(os.path.normpath(path))
            if not os.path.isfile(path):
                _skip(skipped, "listed in the CSV, file missing", path, examples)
                continue
            entries.append(RISEntry(image=path, trajectory=vals["trajectory"], cls=vals["class"]))
    if not entries:
        raise RISManifestError(f"{csv_path}: no existing image listed (skipped: {dict(skipped) or 'none'})")
    unlisted = [n for n in sorted(os.listdir(root))
                if _is_image(n) and os.path.normpath(os.path.join(root, n)) not in listed]
    if unlisted:
        logging.warning(f"{root}: {len(unlisted)} images not listed in {csv_path} are left out, e.g. {unlisted[:3]}")
    _need_two_classes(root, entries, f"the CSV {csv_path}")
    _log_skips("csv", skipped, examples)
    return RISManifest(entries=entries, set=os.path.basename(root.rstrip("/")) or "custom", invariance=invariance,
                       image_size=image_size, skipped=dict(skipped), source=os.path.abspath(csv_path))


# ------------------------------------------------------------------------------------- checking
def verify_entries(manifest: RISManifest, full: bool = False, progress: bool = True) -> RISManifest:
    """Drop (counted, logged) entries whose image cannot be opened or whose box misses it."""
    kept = []
    skipped, examples = Counter(manifest.skipped), {}
    it: Iterable = manifest.entries
    if progress:
        it = tqdm(it, desc="checking images", total=len(manifest.entries))
    for e in it:
        why = verify_image(e.image, e.box, full=full)
        if why is None:
            kept.append(e)
        else:
            reason = "unreadable image" if why.startswith("unreadable") else "box outside the image"
            _skip(skipped, reason, f"{e.image}: {why}", examples)
    _log_skips("verify", Counter({k: v for k, v in skipped.items() if k in examples}), examples)
    if not kept:
        raise RISManifestError(f"no readable image among the {len(manifest.entries)} entries: {dict(skipped)}")
    manifest.entries = kept
    manifest.skipped = dict(skipped)
    return manifest
