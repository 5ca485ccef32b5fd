"""VIDEO.PAIR_SCOPE on the joined clips (five real clips of 40 frames, cuts detected): pairs of
scope shot never straddle a cut, scope video keeps today's pairs, across_shots pairs two shots
of one video; the shot-level source's third frame comes from another shot."""
import logging
import random

import numpy as np
import pytest

from vissl_ext_testing import compose
from vissl_ext.config import ConfigError
from vissl_ext.video.manifest import load_manifest
from vissl_ext.data.region_pairs import VideoRegionPairsSource
from vissl_ext.video.video_io import read_image
from vissl_ext.data.video_sources import VideoFramePairsSource, VideoShotTripletsSource
from vissl_ext.video.tracks_io import save_video_tracks, write_tracks_index


def clip_of(frame_index):
    return frame_index // 40  # ground truth of the joined clip: 40 frames per clip


def pairs_source(manifest, scope=None, *extra, cls=VideoFramePairsSource, name="video_frame_pairs"):
    over = [f"config.DATA.TRAIN.VIDEO.PAIR_SCOPE={scope}"] if scope else []
    cfg = compose("config=pretrain/tiny/frame_temporal_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{manifest}]",
                  f"config.DATA.TRAIN.DATA_SOURCES=[{name}]", *over, *extra)
    return cls(cfg, name, str(manifest), "TRAIN", "test")


def frame_pos(v, img):
    """Position of a read frame among the stored files (by pixels)."""
    for p in range(v.num_frames):
        if np.array_equal(np.asarray(img), np.asarray(read_image(v.frame_path(p)))):
            return p
    raise AssertionError("frame not found among the stored frames")


def test_shot_scope_is_the_default_and_never_straddles_a_cut(joined_frames, caplog):
    manifest = joined_frames / "manifest.json"
    with caplog.at_level(logging.INFO):
        shot = pairs_source(manifest)
    video = pairs_source(manifest, "video")
    (v,) = load_manifest(str(manifest))
    fi = v.frame_indices
    straddle = [(a, b) for _, a, b in video.samples if clip_of(fi[a]) != clip_of(fi[b])]
    assert len(straddle) == 4  # k=1 at stride 2: (38, 40), (78, 80), ... one per join
    assert all(clip_of(fi[a]) == clip_of(fi[b]) for _, a, b in shot.samples)
    assert len(shot) == len(video) - 4 and shot.num_cut_drops == 4
    assert "4 of 99 pairs straddle a cut and are dropped" in caplog.text


def test_shot_scope_random_gap_stays_in_the_shot(joined_frames):
    manifest = joined_frames / "manifest.json"
    src = pairs_source(manifest, "shot", "config.DATA.TRAIN.VIDEO.PAIR_GAP_MAX=8")
    (v,) = load_manifest(str(manifest))
    for idx in range(len(src)):
        _, a, b = src.pair_of(idx)
        assert clip_of(v.frame_indices[a]) == clip_of(v.frame_indices[b]) and 1 <= b - a <= 8


def test_across_shots_pairs_two_shots_of_one_video(joined_frames):
    manifest = joined_frames / "manifest.json"
    src = pairs_source(manifest, "across_shots")
    (v,) = load_manifest(str(manifest))
    assert len(src) == v.num_frames  # every grid anchor (k=1) has partners in 4 other shots
    seen = set()
    random.seed(0)  # z_j is redrawn on each read: fixed draws, enough of them to meet every shot
    for idx in range(0, len(src), 2):
        (img_i, img_j), ok = src[idx]
        a, j = frame_pos(v, img_i), frame_pos(v, img_j)
        assert clip_of(v.frame_indices[a]) != clip_of(v.frame_indices[j])
        seen.add(clip_of(v.frame_indices[j]))
    assert len(seen) == 5  # partners come from all shots, not one fixed neighbour


def test_single_shot_videos_every_scope_but_across_is_todays_pairs(video_frames_dir, caplog):
    manifest = video_frames_dir / "manifest.json"
    # bag and cup are single takes: the default extraction records one shot each
    assert [v.shots["starts"] for v in load_manifest(str(manifest))] == [[0], [0]]
    assert pairs_source(manifest, "shot").samples == pairs_source(manifest, "video").samples
    with caplog.at_level(logging.WARNING), pytest.raises(ValueError, match="no usable sample"):
        pairs_source(manifest, "across_shots")
    assert "fewer than two shots" in caplog.text


def test_shot_triplets_third_frame_is_from_another_shot(joined_frames, video_frames_dir, caplog):
    manifest = joined_frames / "manifest.json"
    src = pairs_source(manifest, None, cls=VideoShotTripletsSource, name="video_shot_triplets")
    (v,) = load_manifest(str(manifest))
    assert len(src) == 95  # the shot-scope pairs
    for idx in range(0, len(src), 5):
        (zi, zk, zj), ok = src[idx]
        a, b, j = frame_pos(v, zi), frame_pos(v, zk), frame_pos(v, zj)
        assert clip_of(v.frame_indices[a]) == clip_of(v.frame_indices[b]) != clip_of(v.frame_indices[j])
        assert b == a + 1
    # single-shot videos give no triplet: counted and logged
    with caplog.at_level(logging.WARNING), pytest.raises(ValueError, match="no usable sample"):
        pairs_source(video_frames_dir / "manifest.json", None, cls=VideoShotTripletsSource, name="video_shot_triplets")
    assert "have a single shot" in caplog.text


def test_region_pairs_respect_the_shot_scope(joined_frames, tmp_path):
    manifest = str(joined_frames / "manifest.json")
    (v,) = load_manifest(manifest)
    # one ground-truth box track over every frame: only the scope can keep a pair out
    tracks = [{"id": 0, "frames": list(range(v.num_frames)), "boxes": [[1, 2, 31, 42]] * v.num_frames}]
    save_video_tracks(str(tmp_path), v.id, [v.width, v.height], tracks)
    write_tracks_index(str(tmp_path), manifest, [v.id], {"test": True}, "ground_truth")

    def src(scope):
        cfg = compose("config=pretrain/tiny/region_tracker_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{tmp_path}]",
                      f"config.DATA.TRAIN.VIDEO.PAIR_SCOPE={scope}")
        return VideoRegionPairsSource(cfg, "video_region_pairs", str(tmp_path), "TRAIN", "test")

    shot, video = src("shot"), src("video")
    assert len(video) - len(shot) == 4 == shot.num_cut_drops
    assert all(clip_of(v.frame_indices[a]) == clip_of(v.frame_indices[b]) for _, a, b in shot.samples)


@pytest.mark.parametrize("extra, match", [
    (["config.DATA.TRAIN.VIDEO.PAIR_SCOPE=clip"], "PAIR_SCOPE must be one of"),
    (["config.DATA.TRAIN.DATA_SOURCES=[video_shot_triplets]", "config.DATA.TRAIN.VIDEO.PAIR_SCOPE=across_shots"],
     "does not apply to video_shot_triplets"),
])
def test_wrong_scopes_fail_at_compose_time(extra, match):
    with pytest.raises(ConfigError, match=match):
        compose("config=pretrain/tiny/frame_temporal_cpu", *extra)


def test_across_shots_is_refused_for_region_pairs():
    with pytest.raises(ConfigError, match="no track crosses a cut"):
        compose("config=pretrain/tiny/region_tracker_cpu", "config.DATA.TRAIN.VIDEO.PAIR_SCOPE=across_shots")


def test_videos_without_shots_give_the_header_line_under_scope_shot_only(joined_frames, tmp_path):
    """Issue 25: a manifest without shots still trains (a warning, not an error); the source
    carries the one line the run's header shows: how many videos, the command that adds them."""
    from vissl_ext.video.manifest import save_manifest

    videos = load_manifest(str(joined_frames / "manifest.json"))
    assert pairs_source(joined_frames / "manifest.json").shots_note is None  # shots recorded: nothing to say
    for v in videos:
        v.shots = None
    bare = tmp_path / "manifest.json"
    save_manifest(str(bare), videos)
    src = pairs_source(bare)
    assert len(src) == 99  # today's pairs, across the cuts too
    assert src.shots_note.startswith(f"no shots recorded for 1 of 1 videos of {bare}: PAIR_SCOPE=shot ")
    assert f"add them: python tools/detect_shots.py {bare}" in src.shots_note
    assert "config.DATA.TRAIN.VIDEO.PAIR_SCOPE=video" in src.shots_note and "\n" not in src.shots_note
    assert pairs_source(bare, "video").shots_note is None  # cuts ignored on purpose: nothing to warn about
