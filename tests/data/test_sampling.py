"""Which frames a sample uses: uniform baseline frames and (z_i, z_{i+k}) pairs, i mod k == 0."""
import random

import pytest

from vissl_ext.data.sampling import grid_step, pair_anchors, partner_choices, uniform_positions


def brute_pairs(frame_indices, k):
    """Straightforward rule: on the grid of frame numbers (spacing = gcd of gaps, origin = first
    frame), every grid index g with g % k == 0 whose frame and the frame k steps later exist."""
    step = grid_step(frame_indices)
    g_of = {(f - frame_indices[0]) // step: p for p, f in enumerate(frame_indices)}
    return [(g_of[g], g_of[g + k]) for g in sorted(g_of) if g % k == 0 and g + k in g_of]


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_pairs_follow_i_mod_k_on_contiguous_frames(k):
    frames = list(range(0, 40, 4))  # extracted with stride 4: the grid step is 4
    pairs, skipped = pair_anchors(frames, k)
    assert skipped == 0
    assert pairs == [(i, i + k) for i in range(0, len(frames) - k, k)]
    for a, b in pairs:
        assert a % k == 0 and b - a == k


def test_pairs_match_brute_force_with_gaps():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(0, 30)
        frames = sorted(rng.sample(range(0, 60), n))
        k = rng.randint(1, 6)
        pairs, skipped = pair_anchors(frames, k)
        assert pairs == brute_pairs(frames, k)
        if frames:
            step = grid_step(frames)
            grid = {(f - frames[0]) // step for f in frames}
            anchors = [g for g in grid if g % k == 0 and g <= max(grid) - k]
            assert skipped == sum(1 for g in anchors if g + k not in grid)


def test_gap_in_frame_folder_skips_only_pairs_that_need_the_missing_frame():
    frames = [0, 1, 2, 4, 5, 6]  # frame 3 missing
    pairs, skipped = pair_anchors(frames, 1)
    assert (2, 3) not in [(frames[a], frames[b]) for a, b in pairs]
    assert [(frames[a], frames[b]) for a, b in pairs] == [(0, 1), (1, 2), (4, 5), (5, 6)]
    assert skipped == 1


@pytest.mark.parametrize("n,k", [(0, 1), (1, 1), (3, 3), (2, 5)])
def test_video_not_longer_than_k_gives_no_pair(n, k):
    assert pair_anchors(list(range(n)), k)[0] == []


def test_invalid_k_rejected():
    with pytest.raises(ValueError, match="k must be >= 1"):
        pair_anchors([0, 1, 2], 0)


def test_uniform_positions():
    assert uniform_positions(10, 3) == [0, 4, 9] or uniform_positions(10, 3) == [0, 5, 9]
    assert uniform_positions(100, 3) == [0, 50, 99] or uniform_positions(100, 3) == [0, 49, 99]
    assert uniform_positions(2, 3) == [0, 1]
    assert uniform_positions(0, 3) == []
    assert uniform_positions(7, 1) == [3]
    with pytest.raises(ValueError):
        uniform_positions(5, 0)
    for n in range(1, 50):
        for m in range(1, 6):
            pos = uniform_positions(n, m)
            assert len(pos) == min(n, m) and pos == sorted(set(pos)) and 0 <= pos[0] and pos[-1] < n


def test_partner_choices_random_gap_range():
    frames = list(range(0, 20, 2))
    a = 2
    ch = partner_choices(frames, a, 1, 3)
    assert [frames[p] - frames[a] for p in ch] == [2, 4, 6]
    assert partner_choices(frames, 9, 1, 3) == []  # last frame: no partner after it
