"""The Region Tracker on the joined real clips (cuts detected): no track links two shots."""
import numpy as np
import pytest

from vissl_ext.video.manifest import load_manifest
from vissl_ext.tracking.features import RegionFeatures
from vissl_ext.tracking.proposals import VideoProposals
from vissl_ext.tracking.tracker import TrackerParams, track_video
from vissl_ext.tracking.trunk import load_tracker_trunk

pytestmark = pytest.mark.slow  # ResNet-50 forwards of 100 frames on CPU (about 20 s)


def test_tracks_end_at_cuts(joined_frames):
    (v,) = load_manifest(str(joined_frames / "manifest.json"))
    n = v.num_frames
    # the same grid of boxes on every frame, and a threshold no distance reaches (unit-norm
    # features are at most 2 apart): without the cuts every region would chain to the end
    W, H = v.width, v.height
    boxes = np.asarray([[0, 0, W / 2, H / 2], [W / 2, 0, W, H / 2], [0, H / 2, W / 2, H], [W / 2, H / 2, W, H]], np.float32)
    props = VideoProposals(v.id, [W, H], [boxes] * n, np.ones(n, bool), np.full(n, 4), {})
    ex = RegionFeatures(load_tracker_trunk(None), pool_size=1, short_side=0)
    params = TrackerParams(num_regions=4, threshold=2.5, mutual=False, input_short_side=0, batch_size=25)
    tracks, stats = track_video(v, props, ex, params)
    clip = [f // 40 for f in v.frame_indices]  # ground truth: 40 source frames per joined clip
    # one-to-one matching keeps 1 to 4 links per cut (several regions may pick one target)
    assert 4 <= stats["links_cut"] <= 4 * 4
    assert len(tracks) >= 4 * 5
    for t in tracks:
        assert len({clip[p] for p in t.frames}) == 1, f"track {t.id} crosses a cut: {t.frames}"
    assert {clip[t.frames[0]] for t in tracks} == set(range(5))
    v.shots = None  # shots unknown: today's behaviour, tracks run through the cuts
    tracks, stats = track_video(v, props, ex, params)
    crossing = sum(len({clip[p] for p in t.frames}) > 1 for t in tracks)
    assert stats["links_cut"] == 0 and crossing > 0
    assert stats["matches"] == sum(len(t.frames) - 1 for t in tracks)
