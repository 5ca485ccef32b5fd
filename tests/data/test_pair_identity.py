"""Which frame each view shows: the query is t(z_i) and the key t(z_{i+k}) of the same video (and
shot), checked on the pixels, for every pretraining source (frame pairs, region pairs, shot
triplets, the baseline's single frames), from frame folders and from raw video, with each
AUGMENT_BACKEND, through VISSL's build_dataset, the config's collator and (device) the hook.

Every frame is drawn in its own grey band: background c, track 0's box c - 2, track 1's box
c + 2, bands 16 levels apart. Grey is a fixed point of grayscale, saturation and hue; crop,
resize, blur and flip only mix pixels of one frame, so every pixel of a view stays within a few
levels of its frame's c (codec noise included) and names the frame. Brightness and contrast
would move the band: the colour distortion runs at strength 0 here (jitter factors 1); the rest
of the MoCo v2 tail (grayscale, blur, flip, normalisation) runs as shipped.
"""
import json
import random
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vissl_ext_testing import compose, extract
from vissl_ext.video.tracks_io import save_video_tracks, write_tracks_index

W, H = 96, 72
STEP, BASE = 16, 16  # band centre of global frame g: BASE + STEP * g
VIDEOS = {"a": (8, [0, 4]), "b": (7, [0, 3])}  # id: (frames, shot starts)
OFFSET = {"a": 0, "b": 8}  # global frame number of each video's first frame
TRACK_LEVEL = (-2, 2)  # box level of tracks 0 and 1, relative to the frame's background
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def level(vid, pos):
    return BASE + STEP * (OFFSET[vid] + pos)


def boxes(pos):
    """Boxes of tracks 0 and 1 on frame ``pos`` (each moves 1 px per frame)."""
    return [[8 + pos, 8, 40 + pos, 40], [52 - pos, 28, 84 - pos, 60]]


def draw(vid, pos):
    c = level(vid, pos)
    img = np.full((H, W, 3), c, np.uint8)
    for (x1, y1, x2, y2), d in zip(boxes(pos), TRACK_LEVEL):
        img[y1:y2, x1:x2] = c + d
    return img


def _write_video(path, frames):
    import av

    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = W, H, "yuv420p"
        s.options = {"crf": "18", "preset": "veryfast"}
        for i, a in enumerate(frames):
            f = av.VideoFrame.from_ndarray(a, format="rgb24")
            f.pts, f.time_base = i, Fraction(1, 25)
            out.mux(s.encode(f))
        out.mux(s.encode(None))


def _with_shots(manifest):
    doc = json.load(open(manifest))
    for v in doc["videos"]:
        v["shots"] = {"starts": VIDEOS[v["id"]][1], "detector": "test"}
    json.dump(doc, open(manifest, "w"))


def _tracks(folder, manifest):
    for vid, (n, _) in VIDEOS.items():
        tracks = [{"id": t, "frames": list(range(n)), "boxes": [boxes(p)[t] for p in range(n)]} for t in (0, 1)]
        save_video_tracks(str(folder), vid, [W, H], tracks)
    write_tracks_index(str(folder), str(manifest), list(VIDEOS), {"test": True}, "ground_truth")


@pytest.fixture(scope="module")
def banded(tmp_path_factory):
    """{"frames": (manifest, tracks dir), "video": (...)}: the same banded frames as JPEG frame
    folders and as H.264 videos read directly, with two shots per video and two tracks."""
    root = tmp_path_factory.mktemp("banded")
    out = {}
    (root / "folders").mkdir()
    (root / "videos").mkdir()
    for vid, (n, _) in VIDEOS.items():
        (root / "folders" / vid).mkdir()
        for p in range(n):
            Image.fromarray(draw(vid, p)).save(root / "folders" / vid / f"frame_{p:05d}.jpg", quality=95)
        _write_video(root / "videos" / f"{vid}.mp4", [draw(vid, p) for p in range(n)])
    for kind, inputs, flags in (("frames", [root / "folders"], {}), ("video", [root / "videos"], {"index_only": True})):
        s = extract(inputs, root / f"{kind}_index", short_side=None, **flags)
        assert s["videos_in_manifest"] == 2
        _with_shots(s["manifest"])
        _tracks(root / f"{kind}_tracks", s["manifest"])
        out[kind] = (s["manifest"], root / f"{kind}_tracks")
    return out


CONFIGS = {"video_frame_pairs": "frame_temporal_cpu", "video_region_pairs": "region_tracker_cpu",
           "video_shot_triplets": "shot_temporal_cpu", "video_frames": "moco_video_baseline_cpu"}


def _strength_zero(cfg_name):
    """The override that sets the colour distortion's strength to 0 (top level or in ImageOnly)."""
    if cfg_name == "region_tracker_cpu":
        return "config.DATA.TRAIN.TRANSFORMS.3.transforms.0.strength=0.0"
    return "config.DATA.TRAIN.TRANSFORMS.2.strength=0.0"


def batch_of(banded, kind, source, backend, *extra):
    """(collated batch of every sample, the data source) for a source read from ``kind`` data."""
    from vissl.data import build_dataset
    from vissl.data.collators import get_collator

    manifest, tracks = banded[kind]
    name = CONFIGS[source]
    path = tracks if source == "video_region_pairs" else manifest
    cfg = compose(f"config=pretrain/tiny/{name}", f"config.DATA.TRAIN.DATA_PATHS=[{path}]",
                  f"config.DATA.TRAIN.DATA_SOURCES=[{source}]", "config.DATA.TRAIN.DATA_LIMIT=-1",
                  f"config.DATA.TRAIN.AUGMENT_BACKEND={backend}", _strength_zero(name),
                  f"config.CHECKPOINT.DIR={Path(manifest).parent.parent / 'ck'}", *extra)  # compose writes a config there
    ds = build_dataset(cfg, "TRAIN")
    train = cfg["DATA"]["TRAIN"]
    collate = get_collator(train["COLLATE_FUNCTION"], train.get("COLLATE_FUNCTION_PARAMS", {}))
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    batch = collate([ds[i] for i in range(len(ds))])
    if backend == "device":  # the hook the launcher adds, on the collated batch
        from vissl_ext.hooks.device_augment_hook import device_augment_hooks

        (hook,) = device_augment_hooks(cfg)

        class Task:
            train = True
            device = torch.device("cpu")
            data_iterator = iter([batch])

        hook.on_phase_start(Task)
        batch = next(Task.data_iterator)
    return batch, ds.data_objs[0]


def grey(view):
    """A normalised [3, H, W] view back to 0..255 grey levels (the channels' mean)."""
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    return ((view.float() * std + mean) * 255).mean(0)


def frame_of(view):
    """(video id, position) of the frame a view shows: the band of (nearly) all its pixels."""
    g = torch.round((grey(view) - BASE) / STEP).long().flatten()
    mode = int(g.mode().values)
    share = float((g == mode).float().mean())
    assert share >= 0.99, f"view mixes frames: {share:.3f} of its pixels in band {mode}"
    vid = "a" if mode < OFFSET["b"] else "b"
    return vid, mode - OFFSET[vid]


def sample_index(batch, b):
    idx = batch["data_idx"][0][b]
    return int(idx.flatten()[0])


def shot_of(vid, pos):
    return sum(pos >= s for s in VIDEOS[vid][1]) - 1


def check_pairs(batch, src, k=1):
    """Row b: the query shows z_i and the key z_{i+k} of the sample's video, in one shot."""
    queries, keys = batch["data"][0], batch["data_momentum"][0]
    assert len(queries) == len(src) > 0
    for b in range(len(queries)):
        vi, i, j = src.samples[sample_index(batch, b)]
        vid = src.videos[vi].id
        assert frame_of(queries[b]) == (vid, i), f"row {b}: query is not z_i of {vid}"
        assert frame_of(keys[b]) == (vid, j) and j == i + k, f"row {b}: key is not z_(i+k) of {vid}"
        assert shot_of(vid, i) == shot_of(vid, j)


KINDS = ["frames", "video"]
BACKENDS = ["host", "fast", "device"]
grid = pytest.mark.parametrize("kind,backend", [(k, b) for k in KINDS for b in BACKENDS])


@grid
def test_frame_pairs_query_is_z_i_and_key_z_i_plus_k(banded, kind, backend):
    batch, src = batch_of(banded, kind, "video_frame_pairs", backend)
    assert len(src) == 11  # shot scope: the pairs (3, 4) of a and (2, 3) of b straddle a cut
    check_pairs(batch, src)


@grid
def test_region_pairs_views_and_boxes_show_z_i_and_z_i_plus_k(banded, kind, backend):
    batch, src = batch_of(banded, kind, "video_region_pairs", backend)
    check_pairs(batch, src)
    queries, keys = batch["data"][0], batch["data_momentum"][0]
    rq, rk = batch["region_boxes"][0], batch["region_boxes_momentum"][0]
    assert rq.shape == rk.shape and len(rq) >= 4  # of 2 x 11 pairs, about half survive both crops
    for (bq, *box_q), (bk, *box_k) in zip(rq.tolist(), rk.tolist()):
        assert bq == bk
        b = int(bq)
        vi, i, j = src.samples[sample_index(batch, b)]
        vid = src.videos[vi].id
        # the box centre shows the track's level on its frame: the same track in both views
        tq = track_at(queries[b], box_q, level(vid, i))
        tk = track_at(keys[b], box_k, level(vid, j))
        assert tq == tk, f"row {b}: query box on track {tq}, key box on track {tk}"


def track_at(view, box, c):
    x1, y1, x2, y2 = box
    d = float(grey(view)[int((y1 + y2) / 2), int((x1 + x2) / 2)]) - c
    found = [t for t, want in enumerate(TRACK_LEVEL) if abs(d - want) <= 1.2]
    assert found, f"box centre at {d:+.1f} levels from the frame's background: on no track"
    return found[0]


@grid
def test_shot_triplets_third_view_is_another_shot_of_the_video(banded, kind, backend):
    batch, src = batch_of(banded, kind, "video_shot_triplets", backend)
    check_pairs(batch, src)
    for b, view in enumerate(batch["shot_data_momentum"][0]):
        vi, i, _ = src.samples[sample_index(batch, b)]
        vid = src.videos[vi].id
        got_vid, j = frame_of(view)
        assert got_vid == vid and shot_of(vid, j) != shot_of(vid, i)


@grid
def test_baseline_views_are_one_frame(banded, kind, backend):
    batch, src = batch_of(banded, kind, "video_frames", backend)
    queries, keys = batch["data"][0], batch["data_momentum"][0]
    assert len(queries) == len(src) == 6
    for b in range(len(queries)):
        vi, p = src.samples[sample_index(batch, b)]
        want = (src.videos[vi].id, p)
        assert frame_of(queries[b]) == want and frame_of(keys[b]) == want
