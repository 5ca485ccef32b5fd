"""tools/propagate_labels.py on the shared DAVIS-2016 sequences: masks, overlay and summary are
written, the masks are palette PNGs at the frame size, the summary's J&F is the one davis_metrics
gives on the written PNGs, and user errors are one error: line with exit code 2."""
import json
import os

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from vissl_ext.downstream import davis_data as dd
from vissl_ext.downstream.davis_metrics import score_sequence, summarise
from vissl_ext_testing import run_tool, shared_path

FLAGS = ["--max-frames", 6, "--short-side", 120, "--arch", "resnet18"]


def _check_outputs(root, out, summary):
    per_seq = {}
    for seq in dd.sequences(root):
        frames = dd.frame_paths(root, seq)[:6]
        preds, gts = [], []
        for f in frames:
            png = os.path.join(out, seq, os.path.basename(f)[:-4] + ".png")
            with Image.open(png) as im, Image.open(f) as frame:
                assert im.mode == "P" and im.size == frame.size
            preds.append(dd.read_labels(png))
            gts.append(dd.read_labels(dd.annotation_path(root, seq, f)))
        np.testing.assert_array_equal(preds[0], gts[0])  # frame 0 is the given annotation
        per_seq[seq] = score_sequence(gts, preds)
    direct = summarise(per_seq)
    for key in ("J_mean", "F_mean", "JF_mean"):
        assert summary[key] == pytest.approx(direct[key], abs=1e-12)
    assert set(summary["sequences"]) == {"car-shadow", "motocross-jump"}
    assert summary["seconds_per_frame"] > 0 and 0 <= summary["share_outside_trunk"] < 1
    with Image.open(os.path.join(out, "overlay.png")) as im:
        assert im.mode == "RGB" and im.size[0] > im.size[1]


def test_random_init_and_a_saved_checkpoint(tmp_path, capsys):
    root = shared_path("video_davis2016_sample")
    out = tmp_path / "random"
    code, text = run_tool("propagate_labels", [root, "--out", out, "--random-init", "--seed", 1, *FLAGS], capsys)
    assert code == 0, text
    summary = json.load(open(out / "summary.json"))
    _check_outputs(root, str(out), summary)
    assert summary["stride"] == 8 and summary["arch"] == "resnet18"

    # a checkpoint in torchvision's layout, stride 16: its own trunk is loaded and scored
    torch.manual_seed(3)
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    out = tmp_path / "ckpt"
    code, text = run_tool("propagate_labels", [root, "--out", out, "--checkpoint", tmp_path / "r18.pth",
                                               "--stride", "16", *FLAGS[:4]], capsys)
    assert code == 0, text
    assert "layout torchvision" in text
    summary = json.load(open(out / "summary.json"))
    _check_outputs(root, str(out), summary)
    assert summary["arch"] == "resnet18" and summary["stride"] == 16


def test_user_errors(tmp_path, capsys):
    root = shared_path("video_davis2016_sample")
    # a root whose first annotation is missing
    bad = tmp_path / "davis"
    os.makedirs(bad / "JPEGImages" / "480p" / "s")
    Image.fromarray(np.zeros((40, 60, 3), np.uint8)).save(bad / "JPEGImages" / "480p" / "s" / "00000.jpg")
    cases = [([tmp_path / "nowhere"], "JPEGImages/480p"),
             ([bad], "00000.png: no annotation of the first frame"),
             ([root, "--topk", 0], "--topk"),
             ([root, "--sequences", "nope"], "--sequences"),
             ([root, "--max-frames", 1], "--max-frames"),
             ([root, "--max-frames", 2], "--max-frames must be >= 3"),  # 2 frames: DAVIS scores none
             ([root, "--tile", 0], "--tile")]
    for argv, message in cases:
        code, text = run_tool("propagate_labels", [*argv, "--out", tmp_path / "o", "--random-init"], capsys)
        lines = [line for line in text.splitlines() if line.strip()]
        assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], text
    assert not (tmp_path / "o").exists()  # nothing written before the inputs are checked


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_res4_stride(arch):
    from vissl_ext.downstream.propagate_cli import build_trunk, parse_args

    x = torch.zeros(1, 3, 64, 96)
    for stride in (8, 16):
        trunk, _ = build_trunk(parse_args(["r", "--out", "o", "--random-init", "--arch", arch, "--stride", str(stride)]))
        with torch.no_grad():
            assert trunk(x).shape[2:] == (64 // stride, 96 // stride)


def test_several_objects_keep_their_ids(tmp_path, capsys):
    """A DAVIS-2017-like sequence: the car of car-shadow split into objects 2 and 5 (palette PNGs)."""
    import shutil

    root = shared_path("video_davis2016_sample")
    new = tmp_path / "davis"
    os.makedirs(new / "JPEGImages" / "480p" / "car")
    os.makedirs(new / "Annotations" / "480p" / "car")
    for f in dd.frame_paths(root, "car-shadow")[:4]:
        shutil.copy(f, new / "JPEGImages" / "480p" / "car")
        lab = dd.read_labels(dd.annotation_path(root, "car-shadow", f))
        cols = np.nonzero(lab.any(0))[0]
        half = (cols.min() + cols.max()) // 2
        lab = np.where(lab > 0, np.where(np.arange(lab.shape[1])[None] < half, 2, 5), 0)
        dd.write_labels(str(new / "Annotations" / "480p" / "car" / (os.path.basename(f)[:-4] + ".png")), lab)
    out = tmp_path / "out"
    code, text = run_tool("propagate_labels", [new, "--out", out, "--random-init", *FLAGS], capsys)
    assert code == 0, text
    summary = json.load(open(out / "summary.json"))
    assert summary["objects"] == 2
    ids = set()
    for f in sorted(os.listdir(out / "car"))[1:]:
        ids |= set(np.unique(dd.read_labels(str(out / "car" / f))).tolist())
    assert ids == {0, 2, 5}
