"""Box-aware augmentation: boxes must stay on the pixels they frame."""
import random

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import RandomResizedCrop

from vissl_ext.data.transforms.box_transforms import (BoxedView, BoxRandomHorizontalFlip, BoxRandomResizedCrop, ImageOnly,
                                           RegionPair, RegionPairToViews, crop_boxes, flip_boxes)
from vissl_ext.data.collators.region_collator import match_views, region_moco_collator

COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


def painted(w=160, h=120, n=5, seed=0):
    """An image with n solid rectangles of distinct colours on grey, and their boxes."""
    rng = np.random.default_rng(seed)
    arr = np.full((h, w, 3), 128, np.uint8)
    boxes = []
    for c in COLOURS[:n]:
        bw, bh = rng.integers(20, 50), rng.integers(20, 40)
        x, y = rng.integers(0, w - bw), rng.integers(0, h - bh)
        arr[y:y + bh, x:x + bw] = c
        boxes.append([x, y, x + bw, y + bh])
    # later rectangles may cover earlier ones: keep only boxes whose colour is intact
    keep = [i for i, (b, c) in enumerate(zip(boxes, COLOURS)) if (arr[b[1]:b[3], b[0]:b[2]] == c).all()]
    return Image.fromarray(arr), np.asarray([boxes[i] for i in keep], np.float32), np.asarray(keep, np.int64)


def colour_share(img, box, colour):
    a = np.asarray(img).astype(int)
    x1, y1, x2, y2 = [int(round(v)) for v in box]
    inner = a[y1 + 1:y2 - 1, x1 + 1:x2 - 1]  # one pixel in: resampling blurs the border
    if inner.size == 0:
        return 1.0
    return float((np.abs(inner - np.asarray(colour)).sum(-1) < 60).mean())


@pytest.mark.parametrize("as_array", [False, True])  # PIL frames, or uint8 arrays (AUGMENT_BACKEND fast/device)
def test_crop_and_flip_keep_boxes_on_their_pixels(as_array):
    random.seed(0)
    torch.manual_seed(0)
    crop = BoxRandomResizedCrop(96, scale=(0.3, 1.0), min_visible=0.5, min_size=4)
    flip = BoxRandomHorizontalFlip(1.0)
    checked, dropped = 0, 0
    for seed in range(40):
        img, boxes, ids = painted(seed=seed)
        if as_array:
            img = np.array(img)
        rng_state = torch.get_rng_state()
        out = flip(crop(BoxedView(img, boxes, ids)))
        assert (out.img.shape[:2] if as_array else out.img.size) == (96, 96)
        for b, t in zip(out.boxes, out.ids):
            assert colour_share(out.img, b, COLOURS[t]) > 0.9
            checked += 1
        # the crop window drawn (same generator state), and each box's pixels inside it counted
        torch.set_rng_state(rng_state)
        src = np.asarray(img)
        top, left, h, w = RandomResizedCrop.get_params(torch.empty((3,) + src.shape[:2], device="meta"), crop.scale,
                                                       crop.ratio)
        for t in ids:
            mask = (src == COLOURS[t]).all(-1)
            inside = mask[top:top + h, left:left + w]
            ys, xs = np.nonzero(inside)
            share = inside.sum() / mask.sum()
            big_enough = len(xs) and (np.ptp(xs) + 1) * 96 / w >= 4 and (np.ptp(ys) + 1) * 96 / h >= 4
            if t in out.ids:
                assert share >= 0.5 - 0.02 and big_enough
            else:  # dropped: it lost more than half its area to the crop, or came out too thin
                assert share < 0.5 + 0.02 or not big_enough, (seed, t, share)
                dropped += 1
    assert checked > 50 and dropped > 10


def test_crop_boxes_against_direct_geometry():
    rng = np.random.default_rng(1)
    for _ in range(200):
        b = np.sort(rng.uniform(0, 200, (6, 2, 2)), axis=1).transpose(0, 2, 1).reshape(6, 4)[:, [0, 2, 1, 3]]
        top, left, h, w = rng.uniform(0, 80), rng.uniform(0, 80), rng.uniform(20, 120), rng.uniform(20, 120)
        ow, oh = 64, 48
        got, keep = crop_boxes(b, top, left, h, w, ow, oh, 0.5, 2)
        for i, (x1, y1, x2, y2) in enumerate(b):
            # straightforward: intersect with the crop window in source pixels, then scale
            ix1, iy1, ix2, iy2 = max(x1, left), max(y1, top), min(x2, left + w), min(y2, top + h)
            vis = max(ix2 - ix1, 0) * max(iy2 - iy1, 0) / ((x2 - x1) * (y2 - y1))
            sx, sy = ow / w, oh / h
            want = [(ix1 - left) * sx, (iy1 - top) * sy, (ix2 - left) * sx, (iy2 - top) * sy]
            ok = vis >= 0.5 and (ix2 - ix1) * sx >= 2 and (iy2 - iy1) * sy >= 2
            assert keep[i] == ok
            if ok:
                assert np.allclose(got[i], want, atol=1e-3)


def test_flip_boxes():
    b = np.asarray([[10, 5, 30, 25]], np.float32)
    assert flip_boxes(b, 100).tolist() == [[70, 5, 90, 25]]


def test_image_only_refuses_geometric_transforms():
    with pytest.raises(ValueError, match="BoxRandomResizedCrop"):
        ImageOnly.from_config({"name": "ImageOnly", "transforms": [{"name": "RandomResizedCrop", "size": 8}]})
    t = ImageOnly.from_config({"name": "ImageOnly", "transforms": [{"name": "ToTensor"}]})
    v = t(BoxedView(Image.new("RGB", (8, 6)), np.zeros((1, 4), np.float32) + 1, np.asarray([3])))
    assert v.img.shape == (3, 6, 8) and v.ids.tolist() == [3]


def test_collator_pairs_boxes_of_the_same_track_only():
    def sample(q_ids, k_ids, i):
        q = BoxedView(torch.zeros(3, 8, 8), np.asarray([[t, t, t + 1, t + 1] for t in q_ids], np.float32), np.asarray(q_ids))
        k = BoxedView(torch.ones(3, 8, 8), np.asarray([[t + 10, t, t + 11, t + 1] for t in k_ids], np.float32), np.asarray(k_ids))
        return {"data": [q, k], "label": [i, i], "data_valid": [1, 1], "data_idx": [i, i]}

    batch = region_moco_collator([sample([1, 2, 3], [3, 1], 0), sample([], [5], 1), sample([7], [7], 2)])
    rq, rk = batch["region_boxes"][0], batch["region_boxes_momentum"][0]
    assert rq.shape == rk.shape == (3, 5)
    assert rq[:, 0].tolist() == [0, 0, 2] and rk[:, 0].tolist() == [0, 0, 2]
    # row m of both is the same track: query box x1 = id, key box x1 = id + 10
    assert (rk[:, 1] - rq[:, 1]).tolist() == [10, 10, 10]
    assert batch["data"][0].shape == (3, 3, 8, 8) and batch["data_momentum"][0].sum() > 0
    assert match_views(np.asarray([4, 5]), np.asarray([6]))[0].size == 0


def test_region_pair_to_views():
    img = Image.new("RGB", (10, 10))
    views = RegionPairToViews()(RegionPair([img, img], [np.zeros((2, 4)), np.ones((2, 4))], np.asarray([4, 9])))
    assert len(views) == 2 and views[1].boxes.dtype == np.float32 and views[0].ids.tolist() == [4, 9]


def kept_directly(boxes, window, out, min_visible, min_size):
    """Which boxes a crop window keeps, from the geometry (intersection in frame pixels, scaled)."""
    top, left, h, w = window
    keep = []
    for x1, y1, x2, y2 in boxes:
        ix, iy = min(x2, left + w) - max(x1, left), min(y2, top + h) - max(y1, top)
        vis = max(ix, 0) * max(iy, 0) / ((x2 - x1) * (y2 - y1))
        keep.append(vis >= min_visible and ix * out / w >= min_size and iy * out / h >= min_size)
    return np.asarray(keep, bool)


def test_box_aware_crop_takes_the_first_window_that_keeps_enough_pairs_of_both_views():
    """tries > 1, a sample's two views together (as VISSL's grouping hands them over): the query
    takes the first of its windows keeping min(cap, its pairs) boxes, the key the first keeping
    min(cap, pairs the query kept) of the query's tracks; neither: the first keeping the most."""
    tries, out, mv, ms = 6, 64, 0.5, 2
    crop = BoxRandomResizedCrop(out, scale=(0.2, 1.0), min_visible=mv, min_size=ms, tries=tries)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    retried = fell_short = 0
    for case in range(80):
        n, cap = int(rng.integers(0, 10)), int(rng.choice([0, 3, 5]))
        wh = rng.uniform(8, 60, (n, 2))
        xy = rng.uniform(0, 1, (n, 2)) * (np.asarray([160, 120]) - wh)
        bq = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        bk = bq + np.float32(rng.uniform(-5, 5))
        bk[:, [0, 2]] = bk[:, [0, 2]].clip(0, 160)
        bk[:, [1, 3]] = bk[:, [1, 3]].clip(0, 120)
        ids = rng.permutation(100)[:n]
        order = rng.permutation(n)  # the key lists its tracks in another order
        img = np.zeros((120, 160, 3), np.uint8)
        q, k = BoxedView(img, bq, ids, cap), BoxedView(img, bk[order], ids[order], cap)
        state = torch.get_rng_state()
        got_q, got_k = crop([q, k])
        torch.set_rng_state(state)  # replay the windows torchvision draws, in order

        def first_enough(view, among):
            need = len(among) if cap == 0 else min(cap, len(among))
            best = None
            for t in range(tries):
                win = RandomResizedCrop.get_params(torch.empty((3, 120, 160), device="meta"), (0.2, 1.0), (3 / 4, 4 / 3))
                keep = kept_directly(view.boxes, win, out, mv, ms)
                count = len(set(view.ids[keep].tolist()) & set(among.tolist()))
                if best is None or count > best[0]:
                    best = (count, win, t)
                if count >= need:
                    return win, t, False
            return best[1], best[2], True

        win_q, tq, short_q = first_enough(q, q.ids)
        assert got_q.crop == win_q, case
        assert got_q.ids.tolist() == q.ids[kept_directly(q.boxes, win_q, out, mv, ms)].tolist()
        win_k, tk, short_k = first_enough(k, got_q.ids)
        assert got_k.crop == win_k, case
        retried += (tq > 0) + (tk > 0)
        fell_short += short_q + short_k
        if n == 0:
            assert tq == tk == 0  # no region pair: torchvision's first window
    assert retried > 20 and fell_short > 3, (retried, fell_short)


def test_vissl_hands_a_samples_views_to_the_crop_together():
    """Through VISSL's transform wrapper (as build_dataset applies the config's list), the key's
    window is the one drawn knowing the query's survivors, not one drawn for the key alone."""
    from vissl.data.ssl_transforms import get_transform

    spec = {"name": "BoxRandomResizedCrop", "size": 32, "scale": [0.2, 1.0], "min_visible": 0.5, "min_size": 2, "tries": 8}
    wrapped = get_transform([{"name": "RegionPairToViews"}, dict(spec)])
    crop = BoxRandomResizedCrop.from_config(spec)
    rng = np.random.default_rng(1)
    img = np.zeros((60, 80, 3), np.uint8)
    alone = 0

    def boxes():
        wh = rng.uniform(6, 30, (6, 2))
        xy = rng.uniform(0, 1, (6, 2)) * (np.asarray([80, 60]) - wh)
        return np.concatenate([xy, xy + wh], 1).astype(np.float32)

    for case in range(60):
        pair = RegionPair([img, img], [boxes(), boxes()], np.arange(6), max_pairs=3)
        torch.manual_seed(case)
        got = wrapped({"data": [pair], "label": [0], "data_valid": [1], "data_idx": [0]})["data"]
        torch.manual_seed(case)
        want = crop(RegionPairToViews()(pair))
        assert [v.crop for v in got] == [v.crop for v in want], case
        torch.manual_seed(case)
        q = crop(RegionPairToViews()(pair)[0])
        alone += crop(RegionPairToViews()(pair)[1]).crop != want[1].crop  # the key cropped on its own
    assert q.crop and alone > 3, alone


def test_one_try_is_torchvisions_draw_for_each_view():
    crop = BoxRandomResizedCrop(32, scale=(0.2, 1.0), tries=1)
    img = np.zeros((60, 80, 3), np.uint8)
    views = [BoxedView(img, np.asarray([[0, 0, 10, 10]], np.float32), np.asarray([1]), 1) for _ in range(2)]
    torch.manual_seed(3)
    got = crop(views)
    torch.manual_seed(3)
    want = [RandomResizedCrop.get_params(torch.empty((3, 60, 80), device="meta"), (0.2, 1.0), (3 / 4, 4 / 3))
            for _ in range(2)]
    assert [v.crop for v in got] == want


@pytest.mark.parametrize("value", [0, 1.5, "x"])
def test_tries_must_be_a_positive_integer(value):
    with pytest.raises(ValueError, match="tries"):
        BoxRandomResizedCrop(32, tries=value)
