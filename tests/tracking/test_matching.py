import pytest
import torch

from vissl_ext.tracking.matching import NO_MATCH, match_padded, pad_features


def match_reference(feats, delta, threshold, mutual):
    """Loops: nearest neighbour, threshold, optional mutual check, then per target the closest
    source (ties: lowest index) wins."""
    out = []
    for i in range(len(feats) - delta):
        a, b = feats[i], feats[i + delta]
        res = [NO_MATCH] * len(a)
        if len(a) and len(b):
            d = [[float(torch.linalg.norm(a[r] - b[s])) for s in range(len(b))] for r in range(len(a))]
            cand = {}
            for r in range(len(a)):
                s = min(range(len(b)), key=lambda j: (d[r][j], j))
                if d[r][s] > threshold:
                    continue
                if mutual and min(range(len(a)), key=lambda q: (d[q][s], q)) != r:
                    continue
                cand.setdefault(s, []).append((d[r][s], r))
            for s, lst in cand.items():
                res[min(lst)[1]] = s
        out.append(res)
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("mutual", [False, True])
@pytest.mark.parametrize("delta", [1, 2])
def test_matching_equals_reference(seed, mutual, delta):
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, 7, (9,), generator=g).tolist()
    feats = [torch.nn.functional.normalize(torch.randn(c, 5, generator=g), dim=1) for c in counts]
    # a few exact duplicates: ties must resolve the same way
    if counts[1] and counts[0]:
        feats[1][0] = feats[0][0]
    x, mask = pad_features(feats, 5)
    nn, _ = match_padded(x, mask, delta, threshold=1.0, mutual=mutual, chunk=3)
    ref = match_reference(feats, delta, 1.0, mutual)
    got = [nn[i, : counts[i]].tolist() for i in range(len(feats) - delta)]
    assert got == ref


def test_cycle_check_removes_distractor_match():
    # frame 0: regions a0, a1; frame 1: only b0 close to a0. a1 is far from everything but
    # its nearest neighbour is still b0: without the mutual check the conflict rule keeps a0;
    # with a threshold that lets a1 through, only the cycle check or the conflict rule stop it
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.tensor([[0.9, 0.1], [-1.0, 0.0]])
    x, mask = pad_features([a, b])
    nn, dist = match_padded(x, mask, 1, threshold=10.0, mutual=False)
    assert nn[0].tolist() == [0, NO_MATCH]  # one-to-one: b0 goes to its closer source a0 alone
    nn_m, _ = match_padded(x, mask, 1, threshold=10.0, mutual=True)
    assert nn_m[0].tolist() == [0, NO_MATCH]
    nn_t, _ = match_padded(x, mask, 1, threshold=0.5, mutual=False)
    assert nn_t[0].tolist() == [0, NO_MATCH] and float(dist[0, 1]) > 0.5


def test_empty_frames_give_no_match():
    feats = [torch.randn(3, 4), torch.zeros(0, 4), torch.randn(2, 4)]
    x, mask = pad_features(feats, 4)
    nn, dist = match_padded(x, mask, 1, 10.0, False)
    assert (nn[0] == NO_MATCH).all() and torch.isinf(dist[0]).all()
    assert (nn[1] == NO_MATCH).all()
    nn2, _ = match_padded(x, mask, 2, 10.0, False)
    got = [t for t in nn2[0, :3].tolist() if t != NO_MATCH]
    assert 1 <= len(got) <= 2 and len(set(got)) == len(got)  # 3 sources, 2 targets: one-to-one
