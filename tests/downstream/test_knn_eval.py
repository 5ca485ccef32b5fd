"""tools/knn_eval.py: its top-1 on a tiny labelled set equals a direct computation (features by
hand through torchvision, kNN by explicit loops over neighbours), with a checkpoint in MoCo's layout."""
import json
import math

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from vissl_ext_testing import run_tool

K, T = 3, 0.07


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """3 classes of noisy colour images (5 train, 3 test each) and a ResNet-18 in MoCo's layout."""
    root = tmp_path_factory.mktemp("knn")
    rng = np.random.default_rng(0)
    # close colours under strong noise: random features tell them apart only in part
    colours = {"a": (120, 100, 100), "b": (100, 120, 100), "c": (100, 100, 120)}
    for split, n in (("train", 5), ("test", 3)):
        for cls, c in colours.items():
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                img = np.clip(rng.normal(c, 70, size=(40, 48, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(root / split / cls / f"{i}.png")
    torch.manual_seed(3)
    net = torchvision.models.resnet18(weights=None)
    sd = {f"module.encoder_q.{k}": v for k, v in net.state_dict().items()}
    ckpt = root / "moco.pth.tar"
    torch.save({"epoch": 1, "arch": "resnet18", "state_dict": sd}, ckpt)
    return root, str(ckpt), net.state_dict()


def _direct_top1(root, state, size):
    """Features image by image, kNN by loops: cosine similarity, k best, exp(s/T) votes per class."""
    import torchvision.transforms as Tr

    net = torchvision.models.resnet18(weights=None)
    net.load_state_dict(state)
    net.fc = torch.nn.Identity()
    net.eval()
    tf = Tr.Compose([Tr.Resize(size), Tr.CenterCrop(size), Tr.ToTensor(),
                     Tr.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    classes = sorted(p.name for p in (root / "train").iterdir())

    def feats(split):
        out = []
        for ci, c in enumerate(classes):
            for f in sorted((root / split / c).iterdir()):
                with torch.no_grad():
                    v = net(tf(Image.open(f).convert("RGB"))[None])[0].numpy().astype(np.float64)
                out.append((v / np.linalg.norm(v), ci))
        return out

    train, test = feats("train"), feats("test")
    right = 0
    for v, label in test:
        sims = sorted(((float(np.dot(v, u)), y) for u, y in train), key=lambda s: -s[0])[:K]
        votes = [0.0] * len(classes)
        for s, y in sims:
            votes[y] += math.exp(s / T)
        right += int(max(range(len(classes)), key=lambda c: votes[c]) == label)
    return 100.0 * right / len(test)


def test_knn_top1_equals_a_direct_computation(data, tmp_path, capsys):
    root, ckpt, state = data
    code, out = run_tool("knn_eval", [ckpt, "--train", root / "train", "--test", root / "test", "--out", tmp_path / "o",
                                      "--k", K, "--temperature", T, "--image-size", 32], capsys)
    assert code == 0, out[-3000:]
    assert "layout MoCo v1/v2 official" in out  # the one line of the load
    res = json.loads((tmp_path / "o" / "knn.json").read_text())
    assert res["arch"] == "resnet18" and res["train_images"] == 15 and res["test_images"] == 9
    assert 0 < res["top1"] < 100  # neither trivial end
    assert res["top1"] == pytest.approx(_direct_top1(root, state, 32), abs=1e-4)  # one image is 11.1 points


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_knn_on_gpu_matches_cpu(data, tmp_path, capsys):
    root, ckpt, _ = data
    res = {}
    for dev in ("cpu", "cuda"):
        code, out = run_tool("knn_eval", [ckpt, "--train", root / "train", "--test", root / "test", "--out",
                                          tmp_path / dev, "--k", K, "--image-size", 32, "--device", dev], capsys)
        assert code == 0, out[-3000:]
        res[dev] = json.loads((tmp_path / dev / "knn.json").read_text())["top1"]
    assert res["cpu"] == res["cuda"]


def test_knn_user_errors(data, tmp_path, capsys):
    root, ckpt, _ = data
    (tmp_path / "other" / "purple").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "other" / "purple" / "a.png")
    code, out = run_tool("knn_eval", [ckpt, "--train", root / "train", "--test", tmp_path / "other", "--out",
                                      tmp_path / "o"], capsys)
    assert code == 2 and "classes ['purple'] are not among the training classes" in out
    code, out = run_tool("knn_eval", [ckpt, "--train", tmp_path / "none", "--test", root / "test", "--out",
                                      tmp_path / "o"], capsys)
    assert code == 2 and "none: no such image folder" in out
    assert not (tmp_path / "o").exists()
