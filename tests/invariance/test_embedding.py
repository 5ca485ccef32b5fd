"""tools/draw_embedding.py: t-SNE of a RIS manifest's features, points coloured by class, each
trajectory one line through its own points in manifest order."""
import json
import os

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from vissl_ext.invariance.embedding import embed_2d, plot_embedding
from vissl_ext_testing import frame_folder, run_tool

TRAJ = [f"t{i // 4}" for i in range(16)]           # 4 trajectories of 4 images
CLASSES = ["cat" if i < 8 else "dog" for i in range(16)]  # 2 classes of 2 trajectories


def _clustered(seed=0):
    """Each trajectory a tight cluster of its own."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, 32))
    return np.stack([centres[i // 4] + 0.05 * rng.normal(size=32) for i in range(16)]).astype(np.float32)


def test_tsne_keeps_trajectories_tight_and_is_seeded():
    a, b = embed_2d(_clustered(), seed=1), embed_2d(_clustered(), seed=1)
    assert a.shape == (16, 2) and np.allclose(a, b)
    d = np.linalg.norm(a[:, None] - a[None], axis=2)
    same = np.array([[TRAJ[i] == TRAJ[j] for j in range(16)] for i in range(16)])
    assert d[same & ~np.eye(16, dtype=bool)].max() < d[~same].min()


def test_each_trajectory_is_one_line_through_its_points_in_order():
    coords = np.arange(32, dtype=float).reshape(16, 2) ** 1.5
    order = list(range(16))
    order[4:8] = [6, 4, 7, 5]  # trajectory t1's images are not contiguous in the manifest
    traj = [TRAJ[i] for i in order]
    classes = [CLASSES[i] for i in order]
    fig = plot_embedding(coords, traj, classes, "x")
    ax = fig.axes[0]
    lines = {ln.get_gid(): ln for ln in ax.lines}
    assert set(lines) == set(TRAJ)
    points = {c.get_gid(): c for c in ax.collections}
    for t, ln in lines.items():
        rows = [i for i, x in enumerate(traj) if x == t]  # manifest order
        assert np.array_equal(ln.get_xydata(), coords[rows])
        cls = classes[rows[0]]
        assert to_rgba(ln.get_color())[:3] == tuple(points[cls].get_facecolor()[0][:3])
    for c in ("cat", "dog"):
        rows = [i for i, x in enumerate(classes) if x == c]
        assert np.array_equal(points[c].get_offsets(), coords[rows])
    assert to_rgba(points["cat"].get_facecolor()[0]) != to_rgba(points["dog"].get_facecolor()[0])


@pytest.fixture
def manifest(tmp_path):
    entry = frame_folder(tmp_path / "data", n=16, size=(40, 32))
    path = tmp_path / "ris.json"
    path.write_text(json.dumps({"format": "vissl_ext.ris_manifest", "version": 1, "set": "toy", "image_size": 32,
                                "entries": [{"image": os.path.join(entry["source"], n), "box": None, "trajectory": t,
                                             "class": c} for n, t, c in zip(entry["frames"], TRAJ, CLASSES)]}))
    return str(path)


def test_tool_draws_from_features_and_from_a_checkpoint(tmp_path, manifest, capsys):
    np.save(tmp_path / "f.npy", _clustered())
    code, out = run_tool("draw_embedding", ["--manifest", manifest, "--features", tmp_path / "f.npy", "--name", "toy model",
                                            "--out", tmp_path / "pics"], capsys)
    assert code == 0, out[-3000:]
    png = tmp_path / "pics" / "embedding_toy_model.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import torch
    import torchvision

    torch.save({"state_dict": {f"backbone.{k}": v for k, v in torchvision.models.resnet18().state_dict().items()}},
               tmp_path / "r18.ckpt")
    code, out = run_tool("draw_embedding", ["--manifest", manifest, "--checkpoint", tmp_path / "r18.ckpt", "--name", "r18",
                                            "--out", tmp_path / "pics"], capsys)
    assert code == 0, out[-3000:]
    assert np.load(tmp_path / "pics" / "features_r18.npy").shape == (16, 512)
    assert (tmp_path / "pics" / "embedding_r18.png").is_file()
    np.save(tmp_path / "short.npy", _clustered()[:5])
    code, out = run_tool("draw_embedding", ["--manifest", manifest, "--features", tmp_path / "short.npy", "--name", "x",
                                            "--out", tmp_path / "pics2"], capsys)
    assert code == 2 and "short.npy" in out and not (tmp_path / "pics2").exists()
