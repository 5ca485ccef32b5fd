"""Region features + matching on frames where the answer is known."""
import numpy as np
import pytest
import torch
from PIL import Image

from vissl_ext.video.extraction import frame_folder_entry
from vissl_ext.tracking.features import RegionFeatures
from vissl_ext.tracking.matching import match_padded, pad_features
from vissl_ext.tracking.proposals import ProposalParams, VideoProposals, propose_frame
from vissl_ext.tracking.tracker import TrackerParams, track_video
from vissl_ext.tracking.trunk import load_tracker_trunk
from vissl_ext_testing import shared_path

pytestmark = pytest.mark.slow  # ResNet-50 forwards on CPU (about 20 s)
SHIFT = (32, 16)  # a multiple of res4's stride: features move exactly with the content
MARGIN = 64


@pytest.fixture(scope="module")
def extractor():
    torch.manual_seed(0)
    return RegionFeatures(load_tracker_trunk(None), pool_size=3, short_side=0)


@pytest.fixture(scope="module")
def frame_pair():
    """A real frame on a uniform canvas and its copy shifted by SHIFT, with the frame's
    selective-search regions and their shifted boxes."""
    import av

    with av.open(shared_path("video_pysot_bag", "bag.avi")) as c:
        fr = next(c.decode(video=0)).to_image().resize((240, 180))
    W, H = 240 + 2 * MARGIN + SHIFT[0], 180 + 2 * MARGIN + SHIFT[1]
    a, b = Image.new("RGB", (W, H), (120, 120, 120)), Image.new("RGB", (W, H), (120, 120, 120))
    a.paste(fr, (MARGIN, MARGIN))
    b.paste(fr, (MARGIN + SHIFT[0], MARGIN + SHIFT[1]))
    boxes, _ = propose_frame(fr, ProposalParams(top_r=40))
    boxes = boxes + MARGIN
    shifted = boxes + np.array(SHIFT * 2, np.float32)
    return a, b, boxes, shifted


def test_every_region_matches_its_shifted_box(extractor, frame_pair):
    a, b, boxes, shifted = frame_pair
    perm = np.random.RandomState(0).permutation(len(shifted))  # targets in another order
    fa, fb = extractor([a, b], [boxes, shifted[perm]])
    x, mask = pad_features([fa, fb])
    for mutual in (False, True):
        nn, dist = match_padded(x, mask, 1, threshold=0.6, mutual=mutual)
        # region r of frame a must match the slot where its shifted box went
        assert perm[nn[0, : len(boxes)].numpy()].tolist() == list(range(len(boxes)))
    assert float(dist[0, : len(boxes)].max()) < 0.05


def test_tracker_chains_shifted_copies(tmp_path, extractor, frame_pair):
    a, b, boxes, shifted = frame_pair
    d = tmp_path / "v"
    d.mkdir()
    for i, im in enumerate([a, b, a]):  # a -> b -> a: every region gives one 3-frame track
        im.save(d / f"{i:06d}.png")
    entry = frame_folder_entry(str(d), "v")
    perm = np.random.RandomState(1).permutation(len(boxes))
    props = VideoProposals("v", list(a.size), [boxes, shifted[perm], boxes[::-1].copy()], np.ones(3, bool),
                           np.full(3, len(boxes)), {})
    params = TrackerParams(num_regions=len(boxes), input_short_side=0, batch_size=2)
    tracks, stats = track_video(entry, props, extractor, params)
    assert stats["tracks"] == len(boxes) == len(tracks) and stats["regions_unmatched"] == 0
    for t in tracks:
        assert t.frames == [0, 1, 2]
        b0, b1, b2 = (np.array(x) for x in t.boxes)
        np.testing.assert_allclose(b1, b0 + np.array(SHIFT * 2), atol=1e-4)
        np.testing.assert_allclose(b2, b0, atol=1e-4)
    # frame 2 replaced by a mirror image: a -> b still matches exactly (distance ~0), b -> mirror
    # only above a tiny threshold, so every track stops at frame 1 and those regions count unmatched
    from PIL import ImageOps

    ImageOps.mirror(a).save(d / "000002.png")
    mirrored = boxes.copy()
    mirrored[:, [0, 2]] = a.width - boxes[:, [2, 0]]
    props.boxes[2] = mirrored
    tracks, stats = track_video(entry, props, extractor, TrackerParams(num_regions=len(boxes), input_short_side=0,
                                                                       threshold=1e-3))
    assert [t.frames for t in tracks] == [[0, 1]] * len(boxes)
    assert stats["regions_unmatched"] == len(boxes)


def test_boxes_follow_the_input_resize(extractor, frame_pair):
    # the same frame stored at twice the size, boxes twice as large, trunk input at one size:
    # the pooled features must agree (boxes are mapped from stored pixels to the trunk input)
    a, _, boxes, _ = frame_pair
    big = a.resize((a.width * 2, a.height * 2), Image.BILINEAR)
    ex = RegionFeatures(extractor.trunk, pool_size=3, short_side=a.height)
    fa = ex([a], [boxes])[0]
    fb = ex([big], [boxes * 2])[0]
    cos = (fa * fb).sum(1)
    assert float(cos.min()) > 0.97
    nn, _ = match_padded(*pad_features([fa, fb]), 1, 0.6, True)
    assert nn[0].tolist() == list(range(len(boxes)))


def test_one_frame_video_and_frames_without_regions_are_counted(tmp_path, extractor, frame_pair):
    a, _, boxes, _ = frame_pair
    d = tmp_path / "one"
    d.mkdir()
    a.save(d / "000000.png")
    entry = frame_folder_entry(str(d), "one")
    props = VideoProposals("one", list(a.size), [boxes], np.ones(1, bool), np.array([len(boxes)]), {})
    tracks, stats = track_video(entry, props, extractor, TrackerParams(input_short_side=0))
    assert tracks == [] and stats["skipped"] == "one frame"
    d2 = tmp_path / "gap"
    d2.mkdir()
    for i in range(3):
        a.save(d2 / f"{i:06d}.png")
    entry = frame_folder_entry(str(d2), "gap")
    empty = np.zeros((0, 4), np.float32)
    props = VideoProposals("gap", list(a.size), [boxes, empty, boxes], np.ones(3, bool), np.array([1, 1, 1]), {})
    tracks, stats = track_video(entry, props, extractor, TrackerParams(input_short_side=0))
    # Δ = 1 cannot bridge the empty frame: no track (a frame without regions is no failed match)
    assert tracks == [] and stats["frames_without_regions"] == 1 and stats["regions_unmatched"] == 0
    tracks, stats = track_video(entry, props, extractor, TrackerParams(input_short_side=0, delta=2))
    assert len(tracks) == len(boxes) and all(t.frames == [0, 2] for t in tracks)
