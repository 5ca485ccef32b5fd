"""The skip path through the real launcher (tools/run_distributed_engines.py) with DATA_LIMIT
set, for the three video sources: a zero-byte JPEG, a truncated JPEG and a video whose middle
is garbage are logged by name, counted, replaced by other samples, and training finishes.

DATA_LIMIT equals the number of samples, a multiple of the batch size, so VISSL's subset
(numpy.int64 indices) is a permutation of all of them and every broken sample is read."""
import json
import math
import os

import pytest

from vissl_ext_testing import extract, garbage_in_middle, run_engine, shared_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def broken_data(tmp_path_factory):
    """One manifest: bag.avi as 9 extracted frames (position 0 a zero-byte JPEG, position 8 a
    truncated one) and cup.mp4 with 200 kB of garbage in its middle, decoded directly at frames
    0, 25, ..., 200 (frames 83-109 do not decode)."""
    d = tmp_path_factory.mktemp("broken")
    out = d / "data"
    extract([shared_path("video_pysot_bag", "bag.avi")], out, stride=4, max_frames=9)
    bad_video = garbage_in_middle(shared_path("video_opencv", "cup.mp4"), d / "cup_garbage.mp4", 200_000)
    s = extract([bad_video], out, index_only=True, stride=25)
    assert s["videos_in_manifest"] == 2
    frames = sorted((out / "frames" / "bag").glob("*.jpg"))
    assert len(frames) == 9
    open(frames[0], "wb").close()
    jpeg = frames[8].read_bytes()
    frames[8].write_bytes(jpeg[: len(jpeg) // 2])
    return {"manifest": out / "manifest.json", "zero": frames[0].name, "truncated": frames[8].name,
            "video": bad_video, "tracks": _tracks(d / "tracks", out / "manifest.json")}


def _tracks(tracks_dir, manifest):
    """Ground-truth-style tracks: one box over the centre of every frame of each video."""
    from vissl_ext.video.manifest import load_manifest
    from vissl_ext.video.tracks_io import save_video_tracks, write_tracks_index

    ids = []
    for v in load_manifest(str(manifest), check_files=False):
        W, H = v.width, v.height
        box = [W / 4, H / 4, 3 * W / 4, 3 * H / 4]
        save_video_tracks(str(tracks_dir), v.id, (W, H), [{"id": 0, "frames": list(range(v.num_frames)),
                                                            "boxes": [box] * v.num_frames}])
        ids.append(v.id)
    write_tracks_index(str(tracks_dir), str(manifest), ids, {"made_by": "test"}, kind="ground_truth")
    return tracks_dir


def losses(ckpt_dir):
    with open(os.path.join(ckpt_dir, "stdout.json")) as f:
        return [json.loads(line)["loss"] for line in f if line.strip()]


CASES = {
    # source: (config, DATA_PATHS key, extra overrides, samples)
    # 3 frames per video (0, middle, last): 6 samples, 2 batches of 3 (VISSL drops the last partial batch)
    "video_frames": ("pretrain/tiny/moco_video_baseline_cpu", "manifest", [
        "config.DATA.TRAIN.VIDEO.FRAMES_PER_VIDEO=3", "config.DATA.TRAIN.BATCHSIZE_PER_REPLICA=3",
        "config.LOSS.moco_loss.queue_size=63"], 6),
    "video_frame_pairs": ("pretrain/tiny/frame_temporal_cpu", "manifest", ["config.DATA.TRAIN.VIDEO.PAIR_GAP=2"], 8),
    "video_region_pairs": ("pretrain/tiny/region_tracker_cpu", "tracks", ["config.DATA.TRAIN.VIDEO.PAIR_GAP=2"], 8),
}


@pytest.mark.parametrize("name", list(CASES))
def test_broken_samples_are_skipped_and_counted_through_the_launcher(broken_data, tmp_path, name):
    config, key, extra, samples = CASES[name]
    rc, out = run_engine([f"config={config}", f"config.DATA.TRAIN.DATA_PATHS=[{broken_data[key]}]",
                          f"config.DATA.TRAIN.DATA_LIMIT={samples}", "config.DATA.TRAIN.VIDEO.SHORT_SIDE=96",
                          f"config.CHECKPOINT.DIR={tmp_path}/ck", *extra], cwd=tmp_path)
    assert rc == 0, out[-4000:]
    assert "TypeError" not in out
    skips = [line for line in out.splitlines() if f"{name}: sample" in line and "unreadable, skipped" in line]
    for what in ("zero", "truncated", "video"):
        assert any(os.path.basename(str(broken_data[what])) in line for line in skips), (what, out[-4000:])
    # each warning carries the running count of this process
    assert f"{len(skips)} skipped in this worker" in skips[-1]
    ls = losses(tmp_path / "ck")
    assert len(ls) == 2 and all(math.isfinite(x) for x in ls)
    assert (tmp_path / "ck" / "model_final_checkpoint_phase0.torch").is_file()
