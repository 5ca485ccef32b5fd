"""The weighted kNN against a plain loop over test samples (numpy), and on data whose answer is known."""
import numpy as np
import pytest
import torch

from vissl_ext.downstream.knn import knn_scores, knn_top1


def _loop(train, labels, test, num_classes, k, t):
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    test = test / np.linalg.norm(test, axis=1, keepdims=True)
    out = np.zeros((len(test), num_classes))
    for i, q in enumerate(test):
        sims = train @ q
        for j in np.argsort(-sims, kind="stable")[:k]:
            out[i, labels[j]] += np.exp(sims[j] / t)
    return out


@pytest.mark.parametrize("k,t,chunk", [(20, 0.07, 1024), (5, 0.5, 7), (1000, 0.1, 3)])
def test_scores_equal_a_plain_loop(k, t, chunk):
    rng = np.random.default_rng(0)
    train, test = rng.normal(size=(300, 16)), rng.normal(size=(50, 16))
    labels = rng.integers(0, 4, size=300)
    got = knn_scores(torch.tensor(train), torch.tensor(labels), torch.tensor(test), 4, k, t, chunk=chunk).numpy()
    np.testing.assert_allclose(got, _loop(train, labels, test, 4, min(k, 300), t), rtol=1e-4)


def test_top1_on_separable_and_shuffled_labels():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(5, 32)) * 5
    y_train, y_test = np.repeat(np.arange(5), 40), np.repeat(np.arange(5), 10)
    x_train = centres[y_train] + rng.normal(size=(200, 32))
    x_test = centres[y_test] + rng.normal(size=(50, 32))
    assert knn_top1(x_train, y_train, x_test, y_test) == 100.0
    # labels carry no information once shuffled: near chance (20%), far from 100
    assert knn_top1(x_train, rng.permutation(y_train), x_test, y_test) < 60.0


def test_bad_arguments():
    with pytest.raises(ValueError, match="k >= 1"):
        knn_scores(torch.ones(3, 2), torch.zeros(3), torch.ones(1, 2), 1, k=0)
    with pytest.raises(ValueError, match="as many training labels"):
        knn_scores(torch.ones(3, 2), torch.zeros(2), torch.ones(1, 2), 1)
