import json
import os

import pytest

from vissl_ext.video.manifest import VideoEntry
from vissl_ext.video.tracks_io import (
    Track,
    TracksError,
    load_tracks_index,
    load_video_tracks,
    save_video_tracks,
    write_tracks_index,
)


def _entry(n=5, w=100, h=80):
    return VideoEntry(id="v1", source="/x", frame_indices=list(range(0, 2 * n, 2)), frames_dir="/x",
                      frames=[f"{i}.jpg" for i in range(n)], width=w, height=h)


def test_round_trip_and_index(tmp_path):
    tracks = [Track(0, [0, 2, 4], [[1, 2, 30, 40], [2, 3, 31, 41.5], [0, 0, 100, 80]]),
              {"id": 7, "frames": [1, 3], "boxes": [[5, 5, 6, 6], [10, 10, 20, 20]]}]
    path = save_video_tracks(str(tmp_path / "t"), "v1", (100, 80), tracks)
    doc = load_video_tracks(path, _entry())
    assert doc["frame_size"] == [100, 80] and doc["video_id"] == "v1"
    assert doc["tracks"][0] == {"id": 0, "frames": [0, 2, 4], "boxes": [[1.0, 2.0, 30.0, 40.0], [2.0, 3.0, 31.0, 41.5], [0.0, 0.0, 100.0, 80.0]]}
    assert doc["tracks"][1]["id"] == 7
    manifest = tmp_path / "frames" / "manifest.json"
    manifest.parent.mkdir()
    manifest.write_text("{}")
    write_tracks_index(str(tmp_path / "t"), str(manifest), ["v1"], {"a": 1}, "region_tracker")
    raw = json.loads((tmp_path / "t" / "index.json").read_text())
    assert raw["manifest"] == "../frames/manifest.json" and raw["videos"] == {"v1": "videos/v1.json"}
    m, videos, idx = load_tracks_index(str(tmp_path / "t"))
    assert m == str(manifest) and videos == {"v1": path} and idx["params"] == {"a": 1}
    # atomic writes leave no temporary files behind
    assert sorted(os.listdir(tmp_path / "t" / "videos")) == ["v1.json"]


@pytest.mark.parametrize("track, msg", [
    ({"id": 0, "frames": [0, 1], "boxes": [[0, 0, 10, 10], [90, 0, 101, 10]]}, "leaves the 100x80 frame"),
    ({"id": 0, "frames": [0, 1], "boxes": [[0, 0, 10, 10], [5, 5, 5, 10]]}, "empty box"),
    ({"id": 0, "frames": [1, 1], "boxes": [[0, 0, 10, 10], [0, 0, 10, 10]]}, "strictly increasing"),
    ({"id": 0, "frames": [0], "boxes": []}, "equal length"),
])
def test_save_refuses_bad_tracks(tmp_path, track, msg):
    with pytest.raises(TracksError, match=msg):
        save_video_tracks(str(tmp_path), "v1", (100, 80), [track])
    assert not (tmp_path / "videos" / "v1.json").exists()


def _write(tmp_path, doc):
    p = tmp_path / "v1.json"
    p.write_text(json.dumps(doc))
    return str(p)


def test_load_validates_against_entry(tmp_path):
    good = {"format": "vissl_ext.tracks", "version": 1, "video_id": "v1", "frame_size": [100, 80],
            "tracks": [{"id": 0, "frames": [0, 5], "boxes": [[0, 0, 10, 10], [0, 0, 10, 10]]}]}
    p = _write(tmp_path, good)
    load_video_tracks(p)  # without the entry the position is not checked
    with pytest.raises(TracksError, match=r"v1.json.*frame position 5 does not exist"):
        load_video_tracks(p, _entry(5))
    with pytest.raises(TracksError, match="does not match the manifest entry"):
        load_video_tracks(p, VideoEntry(id="other", source="/x", frame_indices=list(range(9))))
    with pytest.raises(TracksError, match="differs from the manifest entry"):
        load_video_tracks(p, _entry(9, w=200, h=160))
    with pytest.raises(TracksError, match="version 2 is not supported"):
        load_video_tracks(_write(tmp_path, {**good, "version": 2}))
    with pytest.raises(TracksError, match="not a vissl_ext tracks file"):
        load_video_tracks(_write(tmp_path, {**good, "format": "x"}))
    with pytest.raises(TracksError, match="does not exist"):
        load_video_tracks(str(tmp_path / "missing.json"))


def test_index_refuses_missing_video_and_bad_kind(tmp_path):
    with pytest.raises(TracksError, match="videos/nope.json does not exist"):
        write_tracks_index(str(tmp_path), str(tmp_path / "m.json"), ["nope"], {}, "region_tracker")
    with pytest.raises(TracksError, match="kind"):
        write_tracks_index(str(tmp_path), str(tmp_path / "m.json"), [], {}, "guess")
    (tmp_path / "index.json").write_text(json.dumps({"format": "vissl_ext.tracks_index", "version": 1, "manifest": "m.json",
                                                     "videos": {}, "params": {}, "kind": "magic"}))
    with pytest.raises(TracksError, match="kind 'magic'"):
        load_tracks_index(str(tmp_path))
