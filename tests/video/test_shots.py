"""Shot detection with PySceneDetect on real clips joined end to end (cuts known), its storage in
the manifest, and the OpenCV that stays in use."""
import importlib.metadata
import json
import os

import pytest

from vissl_ext_testing import extract
from vissl_ext.video.manifest import VideoManifestError, VideoEntry, load_manifest, save_manifest
from vissl_ext.video.shots import ShotParams, detect_frames, detect_video, shot_of_positions


def test_scenedetect_leaves_the_contrib_opencv_in_place():
    import scenedetect  # noqa: F401  (imports cv2 itself)
    import cv2

    assert hasattr(cv2, "ximgproc"), f"cv2 at {cv2.__file__} has no ximgproc: opencv-python shadows the contrib build"
    cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    installed = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
    assert "opencv-contrib-python-headless" in installed
    others = installed & {"opencv-python", "opencv-python-headless", "opencv-contrib-python"}
    assert not others, f"a second OpenCV is installed: {others}; install scenedetect with --no-deps"


def _near(a, b, tol=1):
    return abs(a - b) <= tol


@pytest.mark.parametrize("detector", ["content", "adaptive"])
def test_a_cut_at_every_join_and_none_inside_a_clip(joined_clip, detector):
    path, truth = joined_clip
    starts = detect_video(path, ShotParams(detector=detector).validate())
    assert starts[0] == 0
    for t in truth[1:]:
        assert any(_near(s, t) for s in starts), f"no cut within 1 frame of the join at {t}: {starts}"
    for s in starts[1:]:
        assert any(_near(s, t) for t in truth[1:]), f"cut at {s} inside a clip (joins {truth})"
    assert len(starts) == len(truth)


def test_extraction_detects_shots_in_the_same_pass(joined_clip, joined_frames):
    path, truth = joined_clip
    (v,) = load_manifest(str(joined_frames / "manifest.json"))
    assert v.shots["detector"] == "content" and v.shots["threshold"] == 27.0 and v.shots["min_scene_len"] == 15
    # detection saw every frame, not only the kept (stride 2) ones: same cuts as on the video
    assert v.shots["starts"] == detect_video(path, ShotParams().validate())
    assert v.frame_indices == list(range(0, 200, 2))
    ids = shot_of_positions(v.frame_indices, v.shots["starts"])
    clip = [f // 40 for f in v.frame_indices]  # ground truth: 40 frames per joined clip
    away = [p for p, f in enumerate(v.frame_indices) if all(abs(f - t) > 1 for t in truth[1:])]
    assert [ids[p] for p in away] == [clip[p] for p in away]


def test_stored_frames_give_the_same_cuts_when_the_source_is_gone(joined_clip, joined_frames):
    _, truth = joined_clip
    (v,) = load_manifest(str(joined_frames / "manifest.json"))
    starts = detect_frames([v.frame_path(p) for p in range(v.num_frames)], v.frame_indices, ShotParams().validate())
    # kept frames are 2 apart: a cut lands on the first kept frame of the new clip
    assert len(starts) == len(truth) and all(_near(s, t) for s, t in zip(starts, truth))


def test_rerun_resumes_and_a_new_threshold_redetects_only_shots(joined_clip, tmp_path):
    path, _ = joined_clip
    s1 = extract([path], tmp_path, stride=4, shots=True)
    assert s1["processed"] == 1
    meta = tmp_path / "frames" / "joined" / "meta.json"
    mtime = os.path.getmtime(meta)
    assert extract([path], tmp_path, stride=4, shots=True)["skipped_done"] == 1
    s3 = extract([path], tmp_path, stride=4, shots=True, shot_threshold=200.0)
    assert s3["processed"] == 1 and os.path.getmtime(meta) == mtime  # frames kept, shots redone
    (v,) = load_manifest(str(tmp_path / "manifest.json"))
    assert v.shots["threshold"] == 200.0 and v.shots["starts"] == [0]  # nothing passes 200
    # a manifest rebuild (--merge) keeps the shots
    extract([], tmp_path, merge=True)
    assert load_manifest(str(tmp_path / "manifest.json"))[0].shots["threshold"] == 200.0


def test_manifest_without_shots_is_written_as_before(tmp_path):
    e = VideoEntry(id="a", source=None, frame_indices=[0, 1], frames_dir=str(tmp_path), frames=["0.jpg", "1.jpg"])
    save_manifest(str(tmp_path / "m.json"), [e])
    doc = json.loads((tmp_path / "m.json").read_text())
    assert "shots" not in doc["videos"][0]
    assert load_manifest(str(tmp_path / "m.json"), check_files=False)[0].shots is None


@pytest.mark.parametrize("shots, match", [({"starts": [0, 5, 3]}, "increasing"), ({"starts": []}, "non-empty"),
                                         ({"starts": [1]}, "after the first frame"), ([0, 4], "object")])
def test_malformed_shots_are_a_manifest_error_naming_the_video(tmp_path, shots, match):
    e = VideoEntry(id="clip7", source=None, frame_indices=[0, 1], frames_dir=str(tmp_path), frames=["0.jpg", "1.jpg"])
    save_manifest(str(tmp_path / "m.json"), [e])
    doc = json.loads((tmp_path / "m.json").read_text())
    doc["videos"][0]["shots"] = shots
    (tmp_path / "m.json").write_text(json.dumps(doc))
    with pytest.raises(VideoManifestError, match=f"clip7.*{match}"):
        load_manifest(str(tmp_path / "m.json"), check_files=False)


def test_bad_shot_parameters_are_refused():
    with pytest.raises(ValueError, match="detector"):
        ShotParams(detector="histogramz").validate()
    with pytest.raises(ValueError, match="threshold"):
        ShotParams(threshold=-1).validate()
    assert ShotParams(detector="adaptive").validate().threshold == 3.0


# --- shots by default (issue 25) ---------------------------------------------------------------
def test_shots_are_on_by_default_and_no_shots_turns_them_off(joined_clip, tmp_path):
    from vissl_ext.video.extract_cli import parse_args

    assert parse_args(["a.mp4", "out"]).shots and parse_args(["a.mp4", "out", "--shots"]).shots  # old command lines
    assert not parse_args(["a.mp4", "out", "--no-shots"]).shots
    path, _ = joined_clip
    s = extract([path], tmp_path, stride=4, max_frames=10, shots=False)
    assert s["processed"] == 1 and load_manifest(s["manifest"])[0].shots is None
    assert not os.path.exists(tmp_path / "shots")
    # the same folder with the defaults: frames kept, detection alone (videos extracted before without shots)
    meta = tmp_path / "frames" / "joined" / "meta.json"
    mtime = os.path.getmtime(meta)
    s = extract([path], tmp_path, stride=4, max_frames=10)
    (v,) = load_manifest(s["manifest"])
    assert s["processed"] == 1 and os.path.getmtime(meta) == mtime
    assert v.shots["starts"] == [0] and v.shots["read"] == "video"  # frames 0..36: inside the first clip


def test_index_only_manifests_get_shots_by_default(joined_clip, tmp_path):
    path, truth = joined_clip
    s = extract([path], tmp_path, index_only=True, stride=5)
    (v,) = load_manifest(s["manifest"])
    assert v.frames_dir is None and v.shots["read"] == "video"
    assert v.shots["starts"] == detect_video(path, ShotParams().validate())
    assert len(v.shots["starts"]) == len(truth) and all(_near(s, t) for s, t in zip(v.shots["starts"], truth))


def test_frame_folders_are_detected_on_every_stored_image(joined_clip, joined_frames, tmp_path):
    """A frame folder given as input: its images are read (the video is not known), all of them
    up to the last kept one, whatever --stride picks for the manifest."""
    _, truth = joined_clip
    (full,) = load_manifest(str(joined_frames / "manifest.json"))  # stride 2: files 000000.jpg, 000002.jpg, ...
    folder = tmp_path / "joined"
    folder.mkdir()
    for name in full.frames:
        os.symlink(os.path.join(full.frames_dir, name), folder / name)
    s = extract([folder], tmp_path / "out", stride=3)  # kept: every 3rd image, 6 source frames apart
    (v,) = load_manifest(s["manifest"])
    assert v.frames_dir == str(folder) and v.frame_indices[:3] == [0, 6, 12]
    assert v.shots["read"] == "frames"
    # every image fed to the detector: the same cuts as detection on all of them (2 frames apart)
    every = detect_frames([os.path.join(folder, f) for f in full.frames], full.frame_indices, ShotParams().validate())
    assert v.shots["starts"] == every
    assert len(every) == len(truth) and all(_near(s, t, tol=2) for s, t in zip(every, truth))
