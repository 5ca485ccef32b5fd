"""Label propagation against a plain per-cell loop of the same protocol, and on videos whose
answer is known (a still video, an object moving one cell per frame)."""
import numpy as np
import pytest
import torch

from vissl_ext.downstream.label_propagation import propagate_labels


def _loop(feats, first, context, topk, temperature, radius):
    """Per target cell: every cell of every context frame within the window, sorted, top-k, softmax."""
    f = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    t_all, _, h, w = f.shape
    labels = [first.astype(np.float64)]
    for t in range(1, t_all):
        ctx = [0] + list(range(max(1, t - context), t))
        out = np.zeros_like(first, dtype=np.float64)
        for y in range(h):
            for x in range(w):
                cand = []
                for i in ctx:
                    for yy in range(h):
                        for xx in range(w):
                            if abs(yy - y) <= radius and abs(xx - x) <= radius:
                                cand.append((f[t, :, y, x] @ f[i, :, yy, xx] / temperature, labels[i][:, yy, xx]))
                cand.sort(key=lambda c: -c[0])
                top = cand[:topk]
                s = np.array([c[0] for c in top])
                wts = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
                out[:, y, x] = sum(wt * c[1] for wt, c in zip(wts, top))
        labels.append(out)
    return np.stack(labels)


@pytest.mark.parametrize("context,topk,radius", [(2, 4, 2), (20, 10, 12), (1, 1, 0)])
def test_equals_a_plain_loop(context, topk, radius):
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(5, 8, 6, 7)).astype(np.float32)
    first = np.eye(3)[rng.integers(0, 3, size=(6, 7))].transpose(2, 0, 1)
    want = _loop(feats.astype(np.float64), first, context, topk, 0.07, radius)
    for tile in (1, 3, 8):  # blocks of one cell, blocks that do not divide the 6 x 7 frame, one block for all
        got = propagate_labels(torch.tensor(feats), torch.tensor(first), context, topk, 0.07, radius, tile=tile)
        np.testing.assert_allclose(got.numpy(), want, atol=1e-4, err_msg=f"tile {tile}")


def test_a_moving_object_is_followed():
    """Each cell has its own random feature; the object (label 1) and its features move one cell
    right per frame over a static background: its label moves with it."""
    rng = np.random.default_rng(1)
    h, w, t_all = 12, 20, 6
    bg = rng.normal(size=(16, h, w))
    obj = rng.normal(size=(16, 4, 4))
    feats, truth = [], []
    for t in range(t_all):
        f, m = bg.copy(), np.zeros((h, w), int)
        f[:, 4:8, 3 + t:7 + t], m[4:8, 3 + t:7 + t] = obj, 1
        feats.append(f)
        truth.append(m)
    first = np.eye(2)[truth[0]].transpose(2, 0, 1)
    out = propagate_labels(torch.tensor(np.stack(feats), dtype=torch.float32), torch.tensor(first), topk=1,
                           radius=3).argmax(1).numpy()
    for t in range(t_all):
        assert (out[t] == truth[t]).mean() > 0.95, t  # the cells the object uncovers have moved features


def test_bad_arguments():
    with pytest.raises(ValueError, match="same h, w"):
        propagate_labels(torch.zeros(2, 3, 4, 5), torch.zeros(2, 4, 6))
    with pytest.raises(ValueError, match="topk >= 1"):
        propagate_labels(torch.zeros(2, 3, 4, 5), torch.zeros(2, 4, 5), topk=0)
    with pytest.raises(ValueError, match="tile >= 1"):
        propagate_labels(torch.zeros(2, 3, 4, 5), torch.zeros(2, 4, 5), tile=0)
