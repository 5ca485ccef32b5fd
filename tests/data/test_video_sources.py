"""The registered video data sources, through VISSL's own dataset and collator."""
import logging
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from vissl_ext_testing import compose, extract, garbage_in_middle, shared_path
from vissl_ext.config import ConfigError
from vissl_ext.video.manifest import VideoManifestError, load_manifest
from vissl_ext.video.video_io import read_image
from vissl_ext.data.video_sources import VideoFramePairsSource, VideoFramesSource


def tiny_cfg(manifest, *extra):
    return compose("config=pretrain/tiny/frame_temporal_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{manifest}]", *extra)


def source(cls, cfg, path):
    name = "video_frame_pairs" if cls is VideoFramePairsSource else "video_frames"
    return cls(cfg, name, str(path), "TRAIN", "test")


def test_pairs_are_k_apart_in_one_video_and_equal_the_files(video_frames_dir):
    manifest = video_frames_dir / "manifest.json"
    for k in (1, 3):
        cfg = tiny_cfg(manifest, f"config.DATA.TRAIN.VIDEO.PAIR_GAP={k}")
        src = source(VideoFramePairsSource, cfg, manifest)
        videos = {v.id: v for v in load_manifest(str(manifest))}
        assert len(src) == sum(len(range(0, v.num_frames - k, k)) for v in videos.values())
        for idx in range(0, len(src), 5):
            vi, a, b = src.samples[idx]
            v = src.videos[vi]
            assert a % k == 0 and b - a == k  # extraction kept a regular grid: positions = grid steps
            (img_a, img_b), ok = src[idx]
            assert ok
            assert np.array_equal(np.asarray(img_a), np.asarray(read_image(v.frame_path(a))))
            assert np.array_equal(np.asarray(img_b), np.asarray(read_image(v.frame_path(b))))


def test_random_gap_stays_in_range(video_frames_dir):
    manifest = video_frames_dir / "manifest.json"
    cfg = tiny_cfg(manifest, "config.DATA.TRAIN.VIDEO.PAIR_GAP=1", "config.DATA.TRAIN.VIDEO.PAIR_GAP_MAX=4")
    src = source(VideoFramePairsSource, cfg, manifest)
    v = src.videos[0]
    frames = {read_image(v.frame_path(p)).tobytes(): p for p in range(v.num_frames)}
    gaps = set()
    for idx in [i for i, s in enumerate(src.samples) if s[0] == 0][:10]:
        for _ in range(4):
            (a_img, b_img), _ = src[idx]
            gaps.add(frames[b_img.tobytes()] - frames[a_img.tobytes()])
    assert gaps <= {1, 2, 3, 4} and len(gaps) > 1


def test_baseline_frames_are_uniform(video_frames_dir):
    manifest = video_frames_dir / "manifest.json"
    cfg = tiny_cfg(manifest, "config.DATA.TRAIN.DATA_SOURCES=[video_frames]", "config.DATA.TRAIN.VIDEO.FRAMES_PER_VIDEO=3")
    src = source(VideoFramesSource, cfg, manifest)
    assert len(src) == 6
    for vi, v in enumerate(src.videos):
        pos = [p for i, p in src.samples if i == vi]
        n = v.num_frames
        assert pos[0] == 0 and pos[2] == n - 1 and abs(pos[1] - (n - 1) / 2) <= 0.5


def test_vissl_dataset_and_moco_collator_give_two_views(video_frames_dir):
    from vissl.data import build_dataloader, build_dataset

    cfg = tiny_cfg(video_frames_dir / "manifest.json")
    ds = build_dataset(cfg, "TRAIN")
    s = ds[0]
    assert len(s["data"]) == 2 and s["data"][0].shape == (3, 64, 64)
    assert not torch.equal(s["data"][0], s["data"][1])
    loader = build_dataloader(dataset=ds, dataset_config=cfg["DATA"]["TRAIN"], num_dataloader_workers=0, pin_memory=False,
                        multi_processing_method="fork", device=torch.device("cpu"))
    batch = next(iter(loader))
    # moco_collator: data[0] holds queries (frame i views), data[1]... handled by VISSL's MoCo
    assert batch["data"][0].shape == (4, 3, 64, 64)
    assert batch["data_momentum"][0].shape == (4, 3, 64, 64)


def test_corrupt_frame_at_run_time_is_counted_and_replaced(tmp_path, caplog):
    s = extract([shared_path("video_pysot_bag", "bag.avi")], tmp_path, stride=10, max_frames=6)
    cfg = tiny_cfg(s["manifest"])
    src = source(VideoFramePairsSource, cfg, s["manifest"])
    v = src.videos[0]
    open(v.frame_path(0), "wb").write(b"\xff\xd8garbage")  # frame 0 breaks after start-up
    with caplog.at_level(logging.WARNING):
        (a, b), ok = src[np.int64(0)]  # VISSL's index type when DATA_LIMIT >= 0
    assert src.num_failed_reads == 1 and ok
    assert "000000.jpg" in caplog.text and "skipped" in caplog.text
    assert a.size == read_image(v.frame_path(1)).size


def test_short_video_and_gaps_are_counted(tmp_path, caplog):
    root = tmp_path / "folders"
    img = Image.new("RGB", (32, 24), (10, 20, 30))
    for name, nums in {"short": [0, 1], "gappy": [0, 1, 2, 3, 5, 6, 7], "fine": list(range(8))}.items():
        (root / name).mkdir(parents=True)
        for n in nums:
            img.save(root / name / f"frame_{n:05d}.png")
    s = extract([root], tmp_path / "out")
    cfg = tiny_cfg(s["manifest"], "config.DATA.TRAIN.VIDEO.PAIR_GAP=2")
    with caplog.at_level(logging.WARNING):
        src = source(VideoFramePairsSource, cfg, s["manifest"])
    assert src.num_short_videos == 1 and "short" in caplog.text
    assert src.num_gap_skips == 1  # gappy, k=2: anchor 2 lacks frame 4; anchor 0 pairs with 2
    assert len(src) == 1 + 3  # gappy (0, 2); fine (0, 2), (2, 4), (4, 6)


def test_folder_of_videos_read_directly_skips_bad_ones(tmp_path, caplog):
    folder = tmp_path / "videos"
    folder.mkdir()
    os.symlink(shared_path("video_opencv", "cup.mp4"), folder / "cup.mp4")
    (folder / "broken.mp4").write_bytes(b"\x00" * 1000)
    cfg = tiny_cfg(folder)
    with caplog.at_level(logging.WARNING):
        src = source(VideoFramePairsSource, cfg, folder)
    assert [v.id for v in src.videos] == ["cup"] and "broken.mp4" in caplog.text
    (a, b), ok = src[3]
    assert ok and a.size == (b.size)


def test_manifest_with_missing_files_names_them(video_frames_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(video_frames_dir, copy)
    victims = sorted((copy / "frames" / "bag").glob("*.jpg"))[:7]
    for f in victims:
        f.unlink()
    with pytest.raises(VideoManifestError) as e:
        load_manifest(str(copy / "manifest.json"))
    msg = str(e.value)
    assert str(victims[0]) in msg and str(victims[4]) in msg and str(victims[6]) not in msg
    assert "extract_frames.py" in msg


@pytest.mark.parametrize("key,value,match", [("PAIR_GAP", 0, "PAIR_GAP"), ("FRAMES_PER_VIDEO", 0, "FRAMES_PER_VIDEO"),
                                             ("PAIR_GAP_MAX", -2, "PAIR_GAP_MAX"), ("DECODER", "ffmpeg", "DECODER")])
def test_wrong_config_values_fail_at_compose_time(key, value, match):
    with pytest.raises(ConfigError, match=match):
        compose("config=pretrain/tiny/frame_temporal_cpu", f"config.DATA.TRAIN.VIDEO.{key}={value}")


def test_video_read_directly_with_a_corrupt_stretch_skips_and_counts_those_samples(tmp_path, caplog):
    bad = garbage_in_middle(shared_path("video_opencv", "cup.mp4"), tmp_path / "cup_garbage.mp4", 200_000)
    s = extract([bad], tmp_path / "index", index_only=True, stride=5, shots=False)  # read-time skips only
    cfg = tiny_cfg(s["manifest"], "config.DATA.TRAIN.VIDEO.SHORT_SIDE=64")
    src = source(VideoFramePairsSource, cfg, s["manifest"])
    v = src.videos[0]
    broken = [i for i, (_, a, b) in enumerate(src.samples) if {v.frame_indices[a], v.frame_indices[b]} & set(range(83, 110))]
    assert 3 <= len(broken) < len(src) // 2
    with caplog.at_level(logging.WARNING):
        for i in range(len(src)):
            (a, b), ok = src[np.int64(i)]
            assert ok and a.size == b.size
    # every broken sample was read once (and a replacement may have been broken too)
    assert src.num_failed_reads >= len(broken)
    assert caplog.text.count("cup_garbage.mp4: frame at pts") == src.num_failed_reads
