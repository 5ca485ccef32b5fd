"""A plain, independent implementation of the RIS rules (reference for the tests and the
benchmark baseline): full sorts, a loop over trajectories, a loop over classes. Written from
the rules, not from vissl_ext.invariance."""
import numpy as np


def ris_loop(feats, trajectories, classes=None, topk=(10, 25), min_len=3):
    feats = np.asarray(feats)
    n, d = feats.shape
    trajectories = list(trajectories)
    classes = trajectories if classes is None else list(classes)
    class_list = sorted(set(classes))
    percentile = min((1.0 - 1.0 / len(class_list)) * 100, 95)
    k = int((n * percentile) // 100)

    ascending = np.sort(feats, axis=0)
    t_pos = ascending[k]  # value at sorted index k
    t_neg = ascending[::-1][k]  # same index of the descending order
    g = np.array([np.count_nonzero(feats[:, u] >= t_pos[u]) for u in range(d)]) / n

    # images of each trajectory, in order; a trajectory's class = class of its first image
    members = {}
    for i, t in enumerate(trajectories):
        members.setdefault(t, []).append(i)
    rate_sum = {c: np.zeros(d) for c in class_list}
    count = {c: np.zeros(d) for c in class_list}
    for t in sorted(members):
        rows = members[t]
        if len(rows) < min_len:
            continue
        c = classes[rows[0]]
        block = feats[rows]
        fires_pos = (block > t_pos).sum(axis=0)
        fires_neg = (block < t_neg).sum(axis=0)
        best = np.maximum(fires_pos, fires_neg)
        for u in range(d):
            if best[u] > 0:
                rate_sum[c][u] += best[u] / len(rows)
                count[c][u] += 1

    out = {}
    per_class = {}
    for kk in topk:
        vals = []
        for c in class_list:
            local = np.where(count[c] > 0, rate_sum[c] / np.maximum(count[c], 1), 0.0)
            inv = sorted(local / g, reverse=True)
            vals.append(sum(inv[:kk]) / kk)
            per_class.setdefault(str(c), {})[kk] = vals[-1] * (100 - percentile)
        out[kk] = float(np.mean(vals) * (100 - percentile))
    return out, per_class
