import os

import numpy as np
import pytest
from PIL import Image

from vissl_ext.video.extraction import frame_folder_entry
from vissl_ext.video.manifest import save_manifest
from vissl_ext.tracking.propose_cli import parse_args, run
from vissl_ext_testing import cli_argv
from vissl_ext.tracking.proposals import ProposalParams, filter_boxes, load_proposals, propose_frame


def iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def filter_reference(boxes, W, H, p):
    """Loop version: clip, the three filters, greedy NMS in rank order, first top_r."""
    kept = []
    for x1, y1, x2, y2 in boxes:
        b = [min(max(x1, 0), W), min(max(y1, 0), H), min(max(x2, 0), W), min(max(y2, 0), H)]
        w, h = b[2] - b[0], b[3] - b[1]
        if min(w, h) < p.min_side or w <= 0 or h <= 0:
            continue
        if max(w / h, h / w) > p.max_aspect:
            continue
        if not p.min_size_ratio <= w * h / (W * H) <= p.max_size_ratio:
            continue
        if p.nms_iou > 0 and any(iou(b, k) > p.nms_iou for k in kept):
            continue
        kept.append(b)
    return np.array(kept[: p.top_r], np.float32).reshape(-1, 4)


@pytest.mark.parametrize("seed", range(4))
def test_filter_equals_reference(seed):
    rng = np.random.RandomState(seed)
    W, H = 200, 150
    xy = rng.uniform(-20, 180, (300, 2))
    wh = rng.uniform(1, 120, (300, 2))
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    boxes[5] = boxes[4] + 1  # near-duplicate: NMS must drop it
    p = ProposalParams(min_side=8, max_aspect=2.5, min_size_ratio=0.005, max_size_ratio=0.5, nms_iou=0.6, top_r=40)
    got = filter_boxes(boxes, W, H, p)
    np.testing.assert_allclose(got, filter_reference(boxes, W, H, p), atol=1e-4)
    assert len(got) <= 40
    p0 = ProposalParams(min_side=8, max_aspect=2.5, min_size_ratio=0.005, max_size_ratio=0.5, nms_iou=0.0, top_r=1000)
    np.testing.assert_allclose(filter_boxes(boxes, W, H, p0), filter_reference(boxes, W, H, p0), atol=1e-4)


def test_selective_search_on_downscaled_frame_maps_boxes_back():
    # a 400x300 frame with one red square at a known place; selective search runs at short side
    # 150 (half size): a proposal must find the square in stored-frame pixels
    img = Image.new("RGB", (400, 300), (20, 60, 20))
    img.paste((230, 30, 30), (120, 80, 240, 200))
    boxes, raw = propose_frame(img, ProposalParams(ss_short_side=150, nms_iou=0.0, top_r=500))
    assert raw > 0 and len(boxes) > 0
    assert boxes[:, 0].min() >= 0 and boxes[:, 2].max() <= 400 and boxes[:, 3].max() <= 300
    assert max(iou(b, [120, 80, 240, 200]) for b in boxes) > 0.9


@pytest.mark.parametrize("mode", ["fast", "quality"])
def test_real_frame_proposals_pass_filters(mode):
    from vissl_ext_testing import shared_path

    img = Image.open(shared_path("multiview_opencv_pairs", "box_in_scene.png")).convert("RGB")
    p = ProposalParams(mode=mode, ss_short_side=160, top_r=30)
    boxes, raw = propose_frame(img, p)
    W, H = img.size
    assert raw >= len(boxes) > 5 and len(boxes) <= 30
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert (np.minimum(w, h) >= p.min_side).all() and (np.maximum(w / h, h / w) <= p.max_aspect).all()
    assert ((w * h / (W * H) >= p.min_size_ratio) & (w * h / (W * H) <= p.max_size_ratio)).all()


def _args(manifest, out, ss_short_side=96, **flags):
    """tools/propose_regions.py's arguments through its own parser (its defaults)."""
    return parse_args([str(manifest), str(out), *cli_argv(ss_short_side=ss_short_side, no_progress=True, **flags)])


def test_cache_counts_empty_and_corrupt_frames_and_resumes(tmp_path):
    frames = tmp_path / "frames" / "vid"
    frames.mkdir(parents=True)
    scene = Image.new("RGB", (128, 96), (10, 10, 10))
    scene.paste((200, 200, 40), (30, 20, 80, 70))
    scene.save(frames / "000000.jpg")
    Image.new("RGB", (128, 96), (128, 128, 128)).save(frames / "000001.jpg")  # uniform: no region survives
    (frames / "000002.jpg").write_bytes(b"not a jpeg")  # corrupt
    scene.save(frames / "000003.jpg")
    manifest = tmp_path / "manifest.json"
    save_manifest(str(manifest), [frame_folder_entry(str(frames), "vid")])
    out = tmp_path / "props"
    s = run(_args(manifest, out))
    assert (s["processed"], s["frames"], s["unreadable"], s["empty"]) == (1, 4, 1, 1)
    vp = load_proposals(str(out / "vid.npz"))
    assert vp.frame_size == [128, 96] and vp.readable.tolist() == [True, True, False, True]
    assert [len(b) > 0 for b in vp.boxes] == [True, False, False, True]
    assert vp.num_empty == 1
    mtime = os.path.getmtime(out / "vid.npz")
    s2 = run(_args(manifest, out))
    assert s2["skipped_done"] == 1 and s2["processed"] == 0 and os.path.getmtime(out / "vid.npz") == mtime
    with pytest.raises(ValueError, match="other settings"):
        run(_args(manifest, out, top_r=7))
    # shards split the videos
    s3 = run(_args(manifest, tmp_path / "p2", shard="1/2"))
    assert s3["videos"] == 0
