"""Crafted manifests and tracks indices cannot make a tool write outside its output folder:
every reader rejects an id that is absolute, holds a path separator, or is '.'/'..', naming the
entry, and the tools that write per-video files stop before writing anything."""
import json
import os

import pytest
from vissl_ext_testing import frame_folder, run_tool, write_video_manifest

BAD_IDS = ["../escaped", "ABS", "sub/escaped", "..", "."]


def _tree(root):
    return {os.path.join(d, n) for d, dirs, files in os.walk(root) for n in dirs + files}


def _bad(vid, tmp_path):
    return str(tmp_path / "abs_escaped") if vid == "ABS" else vid


@pytest.fixture
def frames(tmp_path):
    """A real frame folder (3 JPEGs) and a valid manifest entry for it."""
    return frame_folder(tmp_path / "data")


def _manifest(tmp_path, entry, vid):
    return write_video_manifest(tmp_path / "data" / "manifest.json", [dict(entry, id=vid)])


def _check(code, out, tmp_path, before, what):
    assert code == 2, out[-2000:]
    err = [line for line in out.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and what in err[0], out[-2000:]
    assert "Traceback" not in out
    assert _tree(tmp_path) - before <= {p for p in _tree(tmp_path) if p.startswith(str(tmp_path / "out"))}
    assert not any("escaped" in os.path.basename(p) for p in _tree(tmp_path) - before)


@pytest.mark.parametrize("vid", BAD_IDS)
def test_propose_regions_refuses_manifest_ids(tmp_path, frames, vid, capsys):
    vid = _bad(vid, tmp_path)
    m = _manifest(tmp_path, frames, vid)
    before = _tree(tmp_path)
    code, out = run_tool("propose_regions", [m, tmp_path / "out", "--no-progress"], capsys)
    _check(code, out, tmp_path, before, f"{m}: video #0")
    assert repr(vid) in out


@pytest.mark.parametrize("vid", ["../escaped", "ABS"])
def test_track_regions_refuses_manifest_ids(tmp_path, frames, vid, capsys):
    vid = _bad(vid, tmp_path)
    m = _manifest(tmp_path, frames, vid)
    (tmp_path / "props").mkdir()
    before = _tree(tmp_path)
    code, out = run_tool("track_regions", [m, tmp_path / "props", tmp_path / "out", "--checkpoint", "random",
                                           "--no-progress"], capsys)
    _check(code, out, tmp_path, before, f"{m}: video #0")


def _tracks(tmp_path, frames, vid):
    """A valid manifest and a tracks index listing ``vid`` (its file holds one valid track)."""
    m = _manifest(tmp_path, frames, "v")
    t = tmp_path / "data" / "tracks"
    (t / "videos").mkdir(parents=True)
    (t / "videos" / "v.json").write_text(json.dumps({
        "format": "vissl_ext.tracks", "version": 1, "video_id": "v", "frame_size": [64, 48],
        "tracks": [{"id": 0, "frames": [0, 1], "boxes": [[1, 1, 20, 20], [2, 2, 21, 21]]}]}))
    (t / "index.json").write_text(json.dumps({
        "format": "vissl_ext.tracks_index", "version": 1, "manifest": os.path.relpath(m, t),
        "videos": {vid: "videos/v.json"}, "params": {}, "kind": "ground_truth"}))
    return t


def test_visualize_tracks_control_writes_inside(tmp_path, frames, capsys):
    """Control: the same index with a safe id draws its picture into the output folder."""
    t = _tracks(tmp_path, frames, "v")
    code, out = run_tool("visualize_tracks", [t, tmp_path / "out", "--no-progress", "--decoder", "pyav"], capsys)
    assert code == 0, out[-2000:]
    assert (tmp_path / "out" / "v.png").is_file()


@pytest.mark.parametrize("vid", BAD_IDS)
def test_visualize_tracks_refuses_index_ids(tmp_path, frames, vid, capsys):
    vid = _bad(vid, tmp_path)
    t = _tracks(tmp_path, frames, vid)
    before = _tree(tmp_path)
    code, out = run_tool("visualize_tracks", [t, tmp_path / "out", "--no-progress"], capsys)
    _check(code, out, tmp_path, before, f"{t / 'index.json'}: video entry")


@pytest.mark.parametrize("where", ["index", "frames"])
def test_extract_frames_merge_refuses_ids(tmp_path, frames, where, capsys):
    """--merge rebuilds the manifest from per-video records: a crafted id stops it."""
    out = tmp_path / "out"
    if where == "index":
        rec = out / "index" / "x.json"
        entry = dict(frames, id="../escaped", frames_dir=None, frames=None, source="/x.mp4", pts=[0])
    else:
        rec = out / "frames" / "v" / "meta.json"
        entry = dict(frames, id="../escaped", frames_dir=".")
    rec.parent.mkdir(parents=True)
    rec.write_text(json.dumps(entry))
    before = _tree(tmp_path)
    code, text = run_tool("extract_frames", ["--merge", out], capsys)
    _check(code, text, tmp_path, before, str(rec))
    assert not (out / "manifest.json").exists()


@pytest.mark.parametrize("set_name", ["../escaped", "ABS", ".."])
def test_compute_ris_refuses_manifest_set_names(tmp_path, frames, set_name, capsys):
    """A RIS manifest's set name names result files (ris_<set>.png of the ris engine)."""
    import numpy as np

    set_name = _bad(set_name, tmp_path)
    m = tmp_path / "data" / "ris.json"
    img = os.path.join(frames["source"], "000000.jpg")
    m.write_text(json.dumps({"format": "vissl_ext.ris_manifest", "version": 1, "set": set_name, "entries": [
        {"image": img, "box": None, "trajectory": "t", "class": "c"}] * 3}))
    np.save(tmp_path / "data" / "f.npy", np.ones((3, 4), np.float32))
    before = _tree(tmp_path)
    code, out = run_tool("compute_ris", ["score", "--manifest", m, "--features", tmp_path / "data" / "f.npy",
                                         "--model", "x", "--out", tmp_path / "out"], capsys)
    _check(code, out, tmp_path, before, f"{m}: set")


def test_reader_functions_name_the_entry(tmp_path, frames):
    from vissl_ext.video.manifest import VideoManifestError, load_manifest
    from vissl_ext.video.tracks_io import TracksError, load_tracks_index

    m = _manifest(tmp_path, frames, "a/b")
    with pytest.raises(VideoManifestError, match=r"video #0: id 'a/b'"):
        load_manifest(str(m))
    t = _tracks(tmp_path, frames, "..")
    with pytest.raises(TracksError, match=r"video entry: id '\.\.'"):
        load_tracks_index(str(t))


def test_a_config_composed_but_not_run_writes_nothing(tmp_path, monkeypatch):
    """The tiny configs' CHECKPOINT.DIR is relative: composing one to read it (tools, the demo's
    pair count, tests) must not leave checkpoints/<name>/train_config.yaml in the current folder;
    the launcher's run still dumps it into its CHECKPOINT.DIR, as VISSL does."""
    from vissl_ext.config import compose_config

    monkeypatch.chdir(tmp_path)
    compose_config(["config=pretrain/tiny/frame_temporal_cpu"], dump=False)
    assert os.listdir(tmp_path) == []
    compose_config(["config=pretrain/tiny/frame_temporal_cpu", f"config.CHECKPOINT.DIR={tmp_path / 'run'}"])
    assert os.path.isfile(tmp_path / "run" / "train_config.yaml")
