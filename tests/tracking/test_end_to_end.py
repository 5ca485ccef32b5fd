"""Real videos of ../shared/data through the whole pipeline: extract frames -> selective search
-> track with a random-init VISSL trunk -> load and validate the tracks -> pictures; then the
same tracking on 2 gloo processes (torchrun) must write the same tracks."""
import json
import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

from vissl_ext.video.manifest import load_manifest
from vissl_ext.video.tracks_io import load_tracks_index, load_video_tracks
from vissl_ext_testing import REPO

pytestmark = pytest.mark.slow


def _tool(name, *args, env=None):
    e = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    p = subprocess.run([sys.executable, os.path.join(REPO, "tools", name), *map(str, args)], capture_output=True,
                       text=True, timeout=600, env=e, cwd=REPO)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p


def _tracks(out):
    manifest, videos, idx = load_tracks_index(str(out))
    entries = {e.id: e for e in load_manifest(manifest)}
    return {vid: load_video_tracks(path, entries[vid])["tracks"] for vid, path in videos.items()}, idx


def test_pipeline_on_real_videos(tmp_path, video_frames_dir):
    manifest = video_frames_dir / "manifest.json"
    props = tmp_path / "props"
    p = _tool("propose_regions.py", manifest, props, "--workers", "2", "--ss-short-side", "96", "--top-r", "30", "--no-progress")
    s = json.loads(p.stdout)
    assert s["processed"] == 2 and s["frames"] == 80 and s["boxes"] > 80 * 5
    from vissl_ext.tracking.trunk import build_trunk, compose_model_config

    torch.manual_seed(0)
    ckpt = tmp_path / "trunk.pth"  # a plain trunk state dict: both runs below use the same weights
    torch.save(build_trunk(compose_model_config()).state_dict(), ckpt)
    common = ["--checkpoint", ckpt, "--input-short-side", "96", "--batch-size", "8", "--no-progress"]
    out = tmp_path / "tracks"
    p = _tool("track_regions.py", manifest, props, out, *common)
    s = json.loads(p.stdout)
    assert s["videos_in_index"] == 2 and s["tracks"] > 10 and s["matches"] > 0
    tracks, idx = _tracks(out)
    assert idx["kind"] == "region_tracker" and idx["params"]["tracker"]["mutual"] is True
    assert sorted(tracks) == ["bag", "cup"] and all(len(t) > 0 for t in tracks.values())
    assert max(len(t["frames"]) for ts in tracks.values() for t in ts) >= 3  # chains beyond one step
    # resumable: a second run finds both videos done
    assert json.loads(_tool("track_regions.py", manifest, props, out, *common).stdout)["skipped_done"] == 2
    # pictures
    pics = tmp_path / "pics"
    _tool("visualize_tracks.py", out, pics, "--no-progress")
    _tool("visualize_tracks.py", out, pics, "--format", "gif", "--num-frames", "6", "--videos", "bag", "--no-progress")
    with Image.open(pics / "bag.png") as im:
        assert im.size[0] > 96 * 4
    with Image.open(pics / "bag.gif") as im:
        assert im.n_frames == 6
    # two ranks (gloo), videos sharded, rank 0 writes the index: same tracks as one process
    out2 = tmp_path / "tracks_ddp"
    e = dict(os.environ, OMP_NUM_THREADS="1", VISSL_EXT_TRACK_BACKEND="gloo")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29561",
                        os.path.join(REPO, "tools", "track_regions.py"), str(manifest), str(props), str(out2), *map(str, common)],
                       capture_output=True, text=True, timeout=600, env=e, cwd=REPO)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert json.loads((out2 / "summary_1-of-2.json").read_text())["videos"] == 1
    assert _tracks(out2)[0] == tracks
