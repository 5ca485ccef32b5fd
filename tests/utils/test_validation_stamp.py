"""The launcher's preflight stamp: ranks skip the file-existence check only for the manifest
bytes the launcher checked, and validate in full otherwise."""
import logging
import os

import pytest
from PIL import Image

from vissl_ext_testing import compose, extract
from vissl_ext.video.manifest import VideoManifestError
from vissl_ext.data.region_pairs import VideoRegionPairsSource
from vissl_ext.video.tracks_io import save_video_tracks, write_tracks_index
from vissl_ext.utils.validation_stamp import STAMP_ENV, launcher_validated, write_stamp
from vissl_ext.data.video_sources import VideoFramePairsSource


@pytest.fixture
def frames(tmp_path):
    """A real manifest (tools/extract_frames.py over two folders of 6 PNG frames)."""
    img = Image.new("RGB", (32, 24), (10, 20, 30))
    for name in ("a", "b"):
        (tmp_path / "folders" / name).mkdir(parents=True)
        for n in range(6):
            img.save(tmp_path / "folders" / name / f"frame_{n:05d}.png")
    s = extract([tmp_path / "folders"], tmp_path / "out")
    return str(s["manifest"])


def pairs(manifest):
    cfg = compose("config=pretrain/tiny/frame_temporal_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{manifest}]")
    return VideoFramePairsSource(cfg, "video_frame_pairs", manifest, "TRAIN", "test")


def launcher_check(manifest, folder):
    cfg = compose("config=pretrain/tiny/frame_temporal_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{manifest}]")
    return write_stamp(folder, VideoFramePairsSource.check_data_path(cfg, manifest, "TRAIN"))


def test_ranks_trust_the_stamp_only_for_the_bytes_the_launcher_checked(frames, tmp_path, monkeypatch, caplog):
    stamp = launcher_check(frames, tmp_path / "ck")
    gone = tmp_path / "folders" / "a" / "frame_00002.png"
    gone.unlink()  # after the launcher's check: only a full check in the rank sees it
    with pytest.raises(VideoManifestError, match="frame_00002.png"):
        pairs(frames)  # no stamp in the environment: full check
    monkeypatch.setenv(STAMP_ENV, stamp)
    with caplog.at_level(logging.INFO):
        src = pairs(frames)  # the rank skipped the file check
    assert "not checked again" in caplog.text and len(src.videos) == 2
    # the missing frame is a counted, logged skip at read time
    idx = next(i for i, (vi, a, b) in enumerate(src.samples) if src.videos[vi].id == "a" and 2 in (a, b))
    _, ok = src[idx]
    assert ok and src.num_failed_reads == 1

    # same bytes, new mtime (a rewrite): full check again
    st = os.stat(frames)
    os.utime(frames, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    with pytest.raises(VideoManifestError, match="frame_00002.png"):
        pairs(frames)
    # other bytes of the same size under the old mtime (a copy with mtime kept): full check
    text = open(frames).read()
    assert '"version": 1' in text
    with open(frames, "w") as f:
        f.write(text.replace('"version": 1', '"version":1 ', 1))  # whitespace moved: valid, same size
    assert os.path.getsize(frames) == st.st_size
    os.utime(frames, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert not launcher_validated(frames)
    with pytest.raises(VideoManifestError, match="frame_00002.png"):
        pairs(frames)


@pytest.mark.parametrize("content", [None, "{", '{"format": "other"}', '{"format": "vissl_ext.preflight_stamp", '
                                                                        '"version": 1, "files": [3]}'])
def test_a_missing_or_malformed_stamp_means_the_full_check(frames, tmp_path, monkeypatch, caplog, content):
    stamp = tmp_path / "stamp.json"
    if content is not None:
        stamp.write_text(content)
    monkeypatch.setenv(STAMP_ENV, str(stamp))
    with caplog.at_level(logging.WARNING):
        assert not launcher_validated(frames)
    assert "unreadable preflight stamp" in caplog.text


def test_region_pairs_stamp_their_frame_manifest(frames, tmp_path, monkeypatch):
    tracks = tmp_path / "tracks"
    for vid in ("a", "b"):
        save_video_tracks(str(tracks), vid, [32, 24], [{"id": 0, "frames": [0, 1, 2], "boxes": [[1, 1, 9, 9]] * 3}])
    write_tracks_index(str(tracks), frames, ["a", "b"], {"test": True}, "ground_truth")
    over = ["config=pretrain/tiny/region_tracker_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{tracks}]"]
    keys = VideoRegionPairsSource.check_data_path(compose(*over), str(tracks), "TRAIN")
    assert [k["path"] for k in keys] == [os.path.abspath(frames)]
    (tmp_path / "folders" / "b" / "frame_00005.png").unlink()
    with pytest.raises(VideoManifestError, match="frame_00005.png"):
        VideoRegionPairsSource(compose(*over), "video_region_pairs", str(tracks), "TRAIN", "test")
    monkeypatch.setenv(STAMP_ENV, write_stamp(tmp_path / "ck", keys))
    src = VideoRegionPairsSource(compose(*over), "video_region_pairs", str(tracks), "TRAIN", "test")
    assert len(src.videos) == 2 and src.num_pairs_with_regions > 0
