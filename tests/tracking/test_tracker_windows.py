"""The tracker streams frames in windows; the tracks must not depend on the window size."""
import numpy as np
import pytest
import torch

from vissl_ext.video.manifest import load_manifest
from vissl_ext.tracking.features import RegionFeatures
from vissl_ext.tracking.proposals import ProposalParams, propose_video
from vissl_ext.tracking.tracker import TrackerParams, track_video
from vissl_ext.tracking.trunk import load_tracker_trunk

pytestmark = pytest.mark.slow  # selective search and ResNet-50 forwards on 10 real frames


@pytest.fixture(scope="module")
def video(video_frames_dir):
    entry = next(e for e in load_manifest(str(video_frames_dir / "manifest.json")) if e.num_frames >= 8)
    return entry, propose_video(entry, ProposalParams(top_r=12, ss_short_side=96))


class OncePerFrame:
    """RegionFeatures run once per frame (batch of one) and remembered: the features do not
    depend on how the tracker groups frames, and the trunk does not run again for each window."""

    def __init__(self, extractor):
        self.extractor, self.timings, self.memo = extractor, extractor.timings, {}

    def __call__(self, images, boxes):
        out = []
        for img, b in zip(images, boxes):
            key = (img.tobytes(), np.asarray(b, np.float32).tobytes())
            if key not in self.memo:
                self.memo[key] = self.extractor([img], [b])[0]
            out.append(self.memo[key])
        return out


@pytest.fixture(scope="module")
def extractor():
    torch.manual_seed(0)
    return OncePerFrame(RegionFeatures(load_tracker_trunk(None), pool_size=3, short_side=0))


def _as_lists(tracks):
    return [(t.frames, np.round(np.asarray(t.boxes, np.float64), 3).tolist()) for t in tracks]


COUNTS = ("frames", "unreadable", "frames_without_regions", "regions", "regions_unmatched", "matches", "tracks")


@pytest.mark.parametrize("delta", [1, 2])
def test_many_small_windows_give_the_tracks_of_one_window(video, extractor, delta):
    entry, props = video
    # threshold high enough that most regions match
    p = TrackerParams(num_regions=12, delta=delta, threshold=1.5, batch_size=4, input_short_side=0)
    whole, s_whole = track_video(entry, props, extractor, p, window=entry.num_frames)
    assert len(whole) >= 5 and max(len(t.frames) for t in whole) >= 4  # tracks cross many windows below
    for window in (1, 2, 3, 5):
        got, s = track_video(entry, props, extractor, p, window=window)
        assert _as_lists(got) == _as_lists(whole), window
        assert {k: s[k] for k in COUNTS} == {k: s_whole[k] for k in COUNTS}


def test_negative_window_is_refused(video, extractor):
    with pytest.raises(ValueError, match="window"):
        track_video(*video, extractor, TrackerParams(), window=-1)
