import json

import pytest
from PIL import Image

from vissl_ext.video.manifest import load_manifest
from vissl_ext.video.tracks_io import load_tracks_index, load_video_tracks
from vissl_ext.tracking.gt_tracks import build_gt_tracks, parse_box_line


def _frames(folder, names, size=(64, 48)):
    folder.mkdir(parents=True)
    for n in names:
        Image.new("RGB", size, (30, 90, 150)).save(folder / n)


def test_parse_box_line():
    assert parse_box_line("1,2.5,3,4\n") == (1.0, 2.5, 3.0, 4.0)
    assert parse_box_line("1\t2 3 4") == (1.0, 2.0, 3.0, 4.0)
    assert parse_box_line("1,2,3") is None and parse_box_line("a,b,c,d") is None and parse_box_line("nan,1,2,3") is None


def test_got10k_layout(tmp_path):
    root = tmp_path / "GOT-10k" / "train"
    seq = root / "GOT-10k_Train_000001"
    _frames(seq, [f"{i:08d}.jpg" for i in range(1, 7)])
    (seq / "groundtruth.txt").write_text("\n".join([
        "10,5,20,10",      # frame 1
        "12,6,20,10",      # frame 2: absent (label 1)
        "garbage line",    # frame 3: malformed
        "50,40,30,30",     # frame 4: clipped to the 64x48 frame
        "14,7,20,10",      # frame 5: cover 0 -> dropped
        "15,8,20,10",      # frame 6
        "1,1,5,5",         # frame 7 does not exist
    ]) + "\n")
    (seq / "absence.label").write_text("0\n1\n0\n0\n0\n0\n0\n")
    (seq / "cover.label").write_text("8\n8\n8\n3\n0\n7\n8\n")
    (seq / "meta_info.ini").write_text("[METAINFO]\nobject_class: bag\nmotion_class: blowing\nresolution: (64, 48)\n")
    other = root / "GOT-10k_Train_000002"  # test-split style: only the first frame annotated
    _frames(other, [f"{i:08d}.jpg" for i in range(1, 4)])
    (other / "groundtruth.txt").write_text("1,1,10,10\n")
    out = tmp_path / "out"
    s = build_gt_tracks(str(tmp_path / "GOT-10k"), "got10k", str(out), progress=False)
    assert s["sequences"] == 2 and s["tracks"] == 1 and s["boxes"] == 3
    assert s["skipped"] == {"target absent": 1, "malformed annotation line": 1, "cover below 1": 1,
                            "annotation line without a frame": 1, "sequence with fewer than two boxes (no pair)": 1}
    manifest, videos, idx = load_tracks_index(str(out / "tracks"))
    assert idx["kind"] == "ground_truth" and sorted(videos) == ["GOT-10k_Train_000001", "GOT-10k_Train_000002"]
    entries = {e.id: e for e in load_manifest(manifest)}
    e = entries["GOT-10k_Train_000001"]
    assert e.frame_indices == [1, 2, 3, 4, 5, 6] and (e.width, e.height) == (64, 48)
    assert e.extra["meta_info"]["object_class"] == "bag"
    doc = load_video_tracks(videos[e.id], e)
    assert doc["frame_size"] == [64, 48]
    (t,) = doc["tracks"]
    assert t["frames"] == [0, 3, 5]  # positions of frames 1, 4, 6
    assert t["boxes"] == [[10, 5, 30, 15], [50, 40, 64, 48], [15, 8, 35, 18]]
    assert load_video_tracks(videos["GOT-10k_Train_000002"], entries["GOT-10k_Train_000002"])["tracks"] == []


def test_trackingnet_layout(tmp_path):
    chunk = tmp_path / "TrackingNet" / "TRAIN_0"
    _frames(chunk / "frames" / "seqA", [f"{i}.jpg" for i in range(12)], size=(80, 60))
    (chunk / "anno").mkdir()
    lines = [f"{i},{i},10,12" for i in range(12)]
    lines[4] = "4,4,10"  # malformed
    lines[7] = "90,70,5,5"  # outside the frame
    (chunk / "anno" / "seqA.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    s = build_gt_tracks(str(tmp_path / "TrackingNet"), "trackingnet", str(out), progress=False)
    assert s["tracks"] == 1 and s["boxes"] == 10
    assert s["skipped"] == {"malformed annotation line": 1, "box empty inside the frame": 1}
    manifest, videos, _ = load_tracks_index(str(out / "tracks"))
    (e,) = load_manifest(manifest)
    assert e.frame_indices == list(range(12))  # numeric order, not 0, 1, 10, 11, 2 ...
    (t,) = load_video_tracks(videos["seqA"], e)["tracks"]
    assert t["frames"] == [0, 1, 2, 3, 5, 6, 8, 9, 10, 11]
    assert t["boxes"][-1] == [11, 11, 21, 23]
    # the manifest points at the frames in place, relative to itself
    assert json.loads((out / "manifest.json").read_text())["videos"][0]["frames_dir"].startswith("../")


def test_missing_layout_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no TrackingNet layout"):
        build_gt_tracks(str(tmp_path), "trackingnet", str(tmp_path / "o"), progress=False)
    with pytest.raises(FileNotFoundError, match="no got10k sequence"):
        build_gt_tracks(str(tmp_path), "got10k", str(tmp_path / "o"), progress=False)


def test_got10k_dirty_labels_are_counted_and_named(tmp_path):
    root = tmp_path / "GOT-10k" / "train"
    seq = root / "GOT-10k_Train_000009"
    _frames(seq, [f"{i:08d}.jpg" for i in range(1, 8)])
    (seq / "groundtruth.txt").write_text("\n".join([
        "10,5,20,10",      # frame 1: kept
        "",                # frame 2: blank line -> counted
        "12,6,20,10",      # frame 3: cover 12 is outside 0..8 -> counted, not kept
        "13,6,20,10",      # frame 4: kept
        "14,6,20,10",      # frame 5: absence 7 is not 0/1 -> counted
        "15,6,20,10",      # frame 6: absence.label ends before it -> counted, not taken as present
        "16,6,20,10",      # frame 7: same
    ]) + "\n")
    (seq / "absence.label").write_text("0\n0\n0\n0\n7\n")
    (seq / "cover.label").write_text("8\n8\n12\n8\n8\n8\n8\n")
    s = build_gt_tracks(str(tmp_path / "GOT-10k"), "got10k", str(tmp_path / "out"), progress=False)
    assert s["skipped"] == {"blank annotation line": 1, "label outside 0..8": 1, "label outside 0..1": 1,
                            "no absence.label line for the box": 2}
    assert s["boxes"] == 2 and s["tracks"] == 1
    assert any("cover.label:3" in w for w in s["examples"]["label outside 0..8"])
    assert any("absence.label has 5 lines" in w for w in s["examples"]["no absence.label line for the box"])
