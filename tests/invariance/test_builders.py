"""Trajectory builders on tiny datasets written in each native layout, and the manifest format."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from vissl_ext.invariance import builders
from vissl_ext.invariance.manifest import RISManifestError, RISEntry, RISManifest, load_ris_manifest


def _img(path, size=(32, 24), color=(120, 30, 200)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new("RGB", size, color).save(path)


# ------------------------------------------------------------------------------------- ALOI
def _aloi(root, kind, objects=(1, 2, 10)):
    names = {"viewpoint": ["r0", "r5", "r355"], "illumination_direction": ["l1c1", "l8c3", "l4c2"],
             "illumination_color": ["i110", "i250", "i180"]}[kind]
    for o in objects:
        for n in names:
            _img(os.path.join(root, "png4", str(o), f"{o}_{n}.png"))
    return os.path.join(root, "png4")


@pytest.mark.parametrize("kind", ["viewpoint", "illumination_direction", "illumination_color"])
def test_aloi_each_object_is_a_trajectory_and_a_class(tmp_path, kind):
    _aloi(str(tmp_path), kind)
    m = builders.build_aloi(str(tmp_path))  # the tar's parent folder is accepted too
    assert m.invariance == kind and m.set == f"aloi_{kind}" and m.image_size == 128
    assert m.trajectories == ["1"] * 3 + ["2"] * 3 + ["10"] * 3  # numeric object order
    assert m.classes == m.trajectories
    assert [os.path.basename(e.image) for e in m.entries[:3]] == sorted(os.listdir(tmp_path / "png4" / "1"))
    assert all(e.box is None for e in m.entries)


def test_aloi_wrong_or_mixed_collection_is_an_error(tmp_path):
    root = _aloi(str(tmp_path), "viewpoint")
    with pytest.raises(RISManifestError, match="viewpoint collection, not illumination_color"):
        builders.build_aloi(root, "illumination_color")
    _img(os.path.join(root, "2", "2_i110.png"))
    with pytest.raises(RISManifestError, match="mixes ALOI collections"):
        builders.build_aloi(root)
    with pytest.raises(RISManifestError, match="no numbered ALOI object folders"):
        builders.build_aloi(str(tmp_path / "png4" / "1"))


# ---------------------------------------------------------------------------------- GOT-10k
def _got_sequence(root, name, covers, cls="sea turtle", boxes=None, resolution=(64, 48)):
    d = os.path.join(root, name)
    os.makedirs(d)
    for i in range(len(covers)):
        _img(os.path.join(d, f"{i + 1:08d}.jpg"), size=resolution)
    boxes = boxes or [[2 + i, 3, 20, 15] for i in range(len(covers))]
    with open(os.path.join(d, "groundtruth.txt"), "w") as f:
        f.write("\n".join(",".join(f"{v:.4f}" for v in b) for b in boxes) + "\n")
    if covers is not None:
        with open(os.path.join(d, "cover.label"), "w") as f:
            f.write("\n".join(str(c) for c in covers) + "\n")
    with open(os.path.join(d, "absence.label"), "w") as f:
        f.write("\n".join("0" for _ in covers) + "\n")
    with open(os.path.join(d, "meta_info.ini"), "w") as f:
        f.write(f"[METAINFO]\nurl: https://example\nbegin_time: 0\nend_time: 1\nobject_class: {cls}\n"
                f"motion_class: swimming\nmajor_class: animal\nroot_class: object\nmotion_adverb: slowly\n"
                f"resolution: ({resolution[0]}, {resolution[1]})\n")


def _reference_choice(cover_lists, seed=1992):
    """The public code's draws: np.random.seed once, one np.random.choice per cover level of
    each kept video (videos in list order)."""
    np.random.seed(seed)
    out = []
    for covers in cover_lists:
        c = np.array(covers)
        u = np.unique(c)
        if u.max() - u.min() < 4:
            out.append(None)
            continue
        out.append([int(np.random.choice(np.where(c == lv)[0])) for lv in u])
    return out


def test_got10k_one_seeded_frame_per_cover_level(tmp_path):
    root = str(tmp_path / "train")
    seqs = {
        "GOT-10k_Train_000002": [8, 8, 7, 6, 6, 5, 4, 4, 3, 8, 7],
        "GOT-10k_Train_000001": [0, 1, 1, 1, 2, 2, 2],  # span 2 < 4: skipped
        "GOT-10k_Train_000003": [8, 0, 4, 4, 8, 2, 0, 8],
    }
    for name, covers in seqs.items():
        _got_sequence(root, name, covers, cls="sea turtle" if name.endswith("3") else "car")
    order = ["GOT-10k_Train_000002", "GOT-10k_Train_000001", "GOT-10k_Train_000003"]
    with open(os.path.join(root, "list.txt"), "w") as f:
        f.write("\n".join(order) + "\n")
    m = builders.build_got10k(root)
    want = _reference_choice([seqs[v] for v in order])
    got = {}
    for e in m.entries:
        got.setdefault(e.trajectory, []).append(e.meta["frame"] - 1)
    assert got == {"GOT-10k_Train_000002": want[0], "GOT-10k_Train_000003": want[2]}
    assert m.skipped == {"cover levels span < 4": 1}
    t3 = [e for e in m.entries if e.trajectory == "GOT-10k_Train_000003"]
    assert [e.meta["cover"] for e in t3] == [0, 2, 4, 8]
    assert {e.cls for e in t3} == {"sea_turtle"}  # spaces -> underscores, as the public code
    assert t3[0].box == [2.0 + want[2][0], 3.0, 20.0, 15.0]
    assert m.invariance == "occlusion" and m.image_size == 128


def test_got10k_counts_bad_boxes_and_missing_labels(tmp_path):
    root = str(tmp_path)
    covers = [0, 2, 4, 6, 8]
    boxes = [[2, 3, 20, 15], [100, 3, 20, 15], [2, 3, 0, 15], [2, 3, 20, 15], [2, 3, 20, 15]]
    _got_sequence(root, "GOT-10k_Train_000001", covers, boxes=boxes)
    _got_sequence(root, "GOT-10k_Train_000002", covers)
    os.remove(os.path.join(root, "GOT-10k_Train_000002", "cover.label"))
    m = builders.build_got10k(root)  # no list.txt: sorted sequence folders
    assert [e.meta["frame"] for e in m.entries] == [1, 4, 5]
    assert m.skipped == {"box empty or outside the image": 2, "no cover.label": 1}


# -------------------------------------------------------------------------------- PASCAL3D+
def _mat(path, objects):
    """A PASCAL3D+ annotation: record.objects(i).bbox = [x1 y1 x2 y2],
    .viewpoint.azimuth_coarse / .elevation_coarse."""
    import scipy.io as sio

    vp_dtype = [("azimuth_coarse", "O"), ("elevation_coarse", "O")]
    objs = np.zeros((1, len(objects)), dtype=[("class", "O"), ("bbox", "O"), ("viewpoint", "O")])
    for i, (bbox, az, el) in enumerate(objects):
        vp = np.zeros((1, 1), dtype=vp_dtype)
        vp[0, 0]["azimuth_coarse"] = np.array([[az]], dtype=float)
        vp[0, 0]["elevation_coarse"] = np.array([[el]], dtype=float)
        objs[0, i]["class"] = "x"
        objs[0, i]["bbox"] = np.array([bbox], dtype=float)
        objs[0, i]["viewpoint"] = vp
    rec = np.zeros((1, 1), dtype=[("filename", "O"), ("objects", "O")])
    rec[0, 0]["filename"] = os.path.basename(path)
    rec[0, 0]["objects"] = objs
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sio.savemat(path, {"record": rec})


def _pascal3d(root):
    # (class, part, name, object index, bbox, azimuth, elevation)
    rows = [
        ("car", "imagenet_train", "n1", 0, [1, 2, 21, 12], 10, 5),     # az bin 0, el bin 0
        ("car", "imagenet_train", "n2", 0, [1, 2, 21, 12], 200, -5),   # 200 % 180 = 20 -> bin 0; -5 % 90 = 85 -> 2
        ("car", "imagenet_val", "n3", 0, [1, 2, 21, 12], 95, 10),      # az bin 3
        ("car", "pascal", "p1", 1, [3, 4, 13, 24], 25, 40),            # az bin 0, el bin 1
        ("aeroplane", "imagenet_train", "a1", 0, [1, 2, 21, 12], 95, 10),
        ("aeroplane", "imagenet_train", "a2", 0, [1, 2, 21, 12], 100, 12),
        ("aeroplane", "pascal", "q1", 0, [1, 2, 21, 12], 5, 12),
    ]
    sets = {}
    for cls, part, name, obj, bbox, az, el in rows:
        folder = f"{cls}_pascal" if part == "pascal" else f"{cls}_imagenet"
        ext = "jpg" if part == "pascal" else "JPEG"
        _img(os.path.join(root, "Images", folder, f"{name}.{ext}"), size=(40, 30))
        objects = [([0, 0, 5, 5], 0, 0)] * obj + [(bbox, az, el)]
        _mat(os.path.join(root, "Annotations", folder, f"{name}.mat"), objects)
        key = f"{cls}_{part}.txt"
        sets.setdefault(key, []).append(f"{name} {obj}" if part == "pascal" else name)
    os.makedirs(os.path.join(root, "Image_sets"), exist_ok=True)
    for cls in ("car", "aeroplane"):
        sets.setdefault(f"{cls}_imagenet_val.txt", [])
    for key, lines in sets.items():
        with open(os.path.join(root, "Image_sets", key), "w") as f:
            f.write("\n".join(lines) + "\n")


def test_pascal3d_instance_and_instance_viewpoint(tmp_path):
    root = str(tmp_path)
    _pascal3d(root)
    inst = builders.build_pascal3d(root, "instance")
    names = [os.path.splitext(os.path.basename(e.image))[0] for e in inst.entries]
    # public code order: every class's ImageNet train, val, then every class's PASCAL images
    assert names == ["a1", "a2", "n1", "n2", "n3", "q1", "p1"]
    by = {n: e for n, e in zip(names, inst.entries)}
    assert by["p1"].box == [3.0, 4.0, 10.0, 20.0]  # [x1, y1, x2 - x1, y2 - y1] of object 1
    assert by["n2"].meta["azimuth_bin"] == 0 and by["n2"].meta["elevation_bin"] == 2
    # aeroplane: (3, 0) -> 1, (0, 0) -> 0 ; car continues at 2: (0,0)->2, (0,1)->3, (0,2)->4, (3,0)->5
    assert {n: by[n].trajectory for n in names} == {"a1": "1", "a2": "1", "q1": "0", "n1": "2", "n2": "4",
                                                    "n3": "5", "p1": "3"}
    assert {n: by[n].cls for n in names} == {"a1": "aeroplane", "a2": "aeroplane", "q1": "aeroplane",
                                             "n1": "car", "n2": "car", "n3": "car", "p1": "car"}
    assert inst.image_size == 224 and inst.set == "pascal3d_instance"

    iv = builders.build_pascal3d(root, "instance_viewpoint")
    t = {os.path.splitext(os.path.basename(e.image))[0]: e.trajectory for e in iv.entries}
    # j-th image of each azimuth bin within a class; the next class starts after the largest count
    # aeroplane: a1 bin3 -> 0, a2 bin3 -> 1, q1 bin0 -> 0 ; car starts at 2: n1 bin0 -> 2, n2 bin0 -> 3,
    # n3 bin3 -> 2, p1 bin0 -> 4
    assert t == {"a1": "0", "a2": "1", "q1": "0", "n1": "2", "n2": "3", "n3": "2", "p1": "4"}


def test_pascal3d_missing_annotation_is_counted(tmp_path):
    root = str(tmp_path)
    _pascal3d(root)
    os.remove(os.path.join(root, "Annotations", "car_imagenet", "n3.mat"))
    m = builders.build_pascal3d(root, "instance")
    assert len(m.entries) == 6 and m.skipped == {"no annotation .mat": 1}
    with pytest.raises(RISManifestError, match="Image_sets"):
        builders.build_pascal3d(str(tmp_path / "Images"), "instance")


# ---------------------------------------------------------------------------------- folders
def test_folders_both_layouts(tmp_path):
    for t in ("walk", "turn"):
        for i in range(3):
            _img(str(tmp_path / "flat" / t / f"{i}.jpg"))
    (tmp_path / "flat" / "walk" / "notes.txt").write_text("not an image")
    m = builders.build_folders(str(tmp_path / "flat"), invariance="deformation", image_size=96)
    assert m.trajectories == ["turn"] * 3 + ["walk"] * 3 and m.classes == m.trajectories
    assert m.invariance == "deformation" and m.image_size == 96
    for c, t in (("dog", "v1"), ("dog", "v2"), ("cat", "v1")):
        for i in range(3):
            _img(str(tmp_path / "nested" / c / t / f"{i}.png"))
    n = builders.build_folders(str(tmp_path / "nested"))
    assert sorted(set(n.trajectories)) == ["cat/v1", "dog/v1", "dog/v2"]
    assert [e.cls for e in n.entries if e.trajectory == "dog/v2"] == ["dog"] * 3
    _img(str(tmp_path / "nested" / "cat" / "stray.jpg"))
    with pytest.raises(RISManifestError, match="both images and folders"):
        builders.build_folders(str(tmp_path / "nested"))


def test_flat_folder_or_one_class_is_refused_with_the_csv_advice(tmp_path):
    for i in range(4):
        _img(str(tmp_path / "flat" / f"{i}.jpg"))
    with pytest.raises(RISManifestError, match=r"lie directly in this folder.*--csv labels.csv"):
        builders.build_folders(str(tmp_path / "flat"))
    # a parent of one flat folder: one trajectory, one class (scoring would fail later)
    with pytest.raises(RISManifestError, match=r"1 trajectories and 1 class \('flat'\).*file,trajectory,class"):
        builders.build_folders(str(tmp_path))


def test_flat_folder_with_csv(tmp_path):
    root = tmp_path / "views"
    for i in range(7):
        _img(str(root / f"img{i}.jpg"))
    rows = ["Class,file,trajectory,note", "mug,img0.jpg,mug_a,x", "mug,img1.jpg,mug_a,", "mug,img2.jpg,mug_a,",
            "mug,img3.jpg,mug_b,", "cup,img4.jpg,cup_a,", "cup,img5.jpg,cup_a,", "cup,gone.jpg,cup_a,"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    m = builders.build_csv(str(root), str(tmp_path / "labels.csv"), invariance="viewpoint", image_size=96)
    assert [os.path.basename(e.image) for e in m.entries] == [f"img{i}.jpg" for i in range(6)]
    assert m.trajectories == ["mug_a"] * 3 + ["mug_b", "cup_a", "cup_a"]
    assert m.classes == ["mug"] * 4 + ["cup"] * 2
    assert m.skipped == {"listed in the CSV, file missing": 1} and m.invariance == "viewpoint"
    (tmp_path / "bad.csv").write_text("file,trajectory\nimg0.jpg,a\n")
    with pytest.raises(RISManifestError, match=r"lacks the columns \['class'\]"):
        builders.build_csv(str(root), str(tmp_path / "bad.csv"))
    (tmp_path / "empty_cell.csv").write_text("file,trajectory,class\nimg0.jpg,a,c\nimg1.jpg,,c\n")
    with pytest.raises(RISManifestError, match=r"line 3: empty \['trajectory'\]"):
        builders.build_csv(str(root), str(tmp_path / "empty_cell.csv"))
    (tmp_path / "one.csv").write_text("file,trajectory,class\nimg0.jpg,a,c\nimg1.jpg,b,c\n")
    with pytest.raises(RISManifestError, match="1 class"):
        builders.build_csv(str(root), str(tmp_path / "one.csv"))


def test_verify_skips_unreadable_images_and_boxes_outside(tmp_path):
    for i in range(4):
        _img(str(tmp_path / "t" / f"{i}.jpg"), size=(30, 20))
        _img(str(tmp_path / "u" / f"{i}.jpg"), size=(30, 20))  # a second class: RIS needs two
    (tmp_path / "t" / "3.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    m = builders.build_folders(str(tmp_path))
    m.entries[1].box = [40, 0, 5, 5]  # right of a 30 px wide image
    v = builders.verify_entries(m, progress=False)
    assert [os.path.basename(e.image) for e in v.entries if e.trajectory == "t"] == ["0.jpg", "2.jpg"]
    assert v.skipped == {"unreadable image": 1, "box outside the image": 1}


# --------------------------------------------------------------------------------- manifest
def test_manifest_round_trip_relative_paths(tmp_path):
    _img(str(tmp_path / "imgs" / "a.jpg"))
    m = RISManifest(entries=[RISEntry(str(tmp_path / "imgs" / "a.jpg"), "t1", "c1", box=[1, 2, 3, 4],
                                      meta={"cover": 3})], set="s", invariance="occlusion", image_size=128)
    m.save(str(tmp_path / "manifest.json"))
    raw = json.loads((tmp_path / "manifest.json").read_text())
    assert raw["entries"][0]["image"] == os.path.join("imgs", "a.jpg")  # portable with its folder
    back = load_ris_manifest(str(tmp_path))  # a folder: its manifest.json
    assert back.entries[0].image == str(tmp_path / "imgs" / "a.jpg")
    assert back.entries[0].box == [1.0, 2.0, 3.0, 4.0] and back.entries[0].meta == {"cover": 3}
    assert (back.set, back.invariance, back.image_size) == ("s", "occlusion", 128)


@pytest.mark.parametrize("edit,msg", [
    (lambda d: d["entries"][0].update(colour="red"), "unknown keys \\['colour'\\]"),
    (lambda d: d.update(extra=1), "unknown top-level keys"),
    (lambda d: d["entries"][0].pop("trajectory"), "missing keys \\['trajectory'\\]"),
    (lambda d: d["entries"][0].update(box=[1, 2, 0, 4]), "no area"),
    (lambda d: d["entries"][0].update(box=[1, 2]), "box must be"),
    (lambda d: d.update(entries=[]), "lists no image"),
    (lambda d: d.update(format="other"), "not a RIS manifest"),
])
def test_manifest_errors_name_the_file_and_entry(tmp_path, edit, msg):
    d = {"format": "vissl_ext.ris_manifest", "version": 1, "set": "s", "invariance": "v", "image_size": 128,
         "entries": [{"image": "a.jpg", "box": None, "trajectory": "t", "class": "c"}]}
    edit(d)
    p = tmp_path / "m.json"
    p.write_text(json.dumps(d))
    with pytest.raises(RISManifestError, match=msg) as e:
        load_ris_manifest(str(p))
    assert str(p) in str(e.value)
