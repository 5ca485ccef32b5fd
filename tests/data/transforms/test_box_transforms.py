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
