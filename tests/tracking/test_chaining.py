import random

import pytest
import torch

from vissl_ext.tracking.chaining import chain
from vissl_ext.tracking.tracker import tracks_from_matches


def chain_reference(succ, min_len):
    """Straightforward walk: from every node without a predecessor follow succ to the end."""
    succ = list(succ)
    has_pred = {s for s in succ if s >= 0}
    tracks = []
    for node in range(len(succ)):
        if node in has_pred:
            continue
        path = [node]
        while succ[path[-1]] >= 0:
            path.append(succ[path[-1]])
        if len(path) >= min_len:
            tracks.append(path)
    return tracks


def _random_one_to_one(n_frames, R, p_match, rng):
    succ = [-1] * (n_frames * R)
    for f in range(n_frames - 1):
        targets = list(range(R))
        rng.shuffle(targets)
        for r in range(R):
            if rng.random() < p_match:
                succ[f * R + r] = (f + 1) * R + targets[r]
    return succ


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("min_len", [2, 3])
def test_chain_matches_reference(seed, min_len):
    rng = random.Random(seed)
    succ = _random_one_to_one(rng.randint(1, 12), rng.randint(1, 6), 0.7, rng)
    tid, order = chain(torch.tensor(succ), min_len)
    ref = chain_reference(succ, min_len)
    got = []
    for t in range(int(tid.max()) + 1 if (tid >= 0).any() else 0):
        got.append([int(n) for n in order if tid[n] == t])
    assert got == ref
    assert (tid >= 0).sum() == sum(len(t) for t in ref)


def test_chain_known_graph_and_boxes():
    # R = 2 slots, 4 frames: slot0 0->0->1->(end), slot1 of frame 0 -> slot1 of frame 1 -> end
    R = 2
    succ = torch.full((8,), -1)
    succ[0], succ[2], succ[5] = 2, 5, 7  # nodes 0 -> 2 -> 5 -> 7
    succ[1] = 3  # 1 -> 3
    boxes = torch.arange(8 * 4, dtype=torch.float32).view(4, R, 4)
    tracks = tracks_from_matches(succ, boxes, R, 2)
    assert [(t.id, t.frames) for t in tracks] == [(0, [0, 1, 2, 3]), (1, [0, 1])]
    assert tracks[0].boxes[2] == boxes[2, 1].tolist() and tracks[1].boxes[1] == boxes[1, 1].tolist()
    assert [t.frames for t in tracks_from_matches(succ, boxes, R, 3)] == [[0, 1, 2, 3]]


def test_chain_refuses_many_to_one():
    with pytest.raises(ValueError, match="two predecessors"):
        chain(torch.tensor([2, 2, -1]))
