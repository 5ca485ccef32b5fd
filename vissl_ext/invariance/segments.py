"""Row chunks of a feature matrix laid out trajectory by trajectory, for per-trajectory counts.

RIS needs, per trajectory and unit, how many of the trajectory's images pass a threshold: a
segment sum of a boolean mask over the trajectory's rows. Trajectories are visited sorted by
(length, id), so equal-length neighbours form runs and one reshape-sum counts a whole run.
Chunks hold whole trajectories (a longer one is split into pieces) and at most 255 rows, so
every per-chunk sum of a 0/1 mask fits in uint8 (the fastest numpy reduction).
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

MAX_CHUNK_ROWS = 255  # sums of 0/1 over a chunk fit in uint8

Run = Tuple[int, int, int, int]  # (first row in the chunk, number of pieces m, piece length L, first plan trajectory)


@dataclass
class TrajectoryPlan:
    order: Optional[np.ndarray]  # plan row -> image row; None: the identity (no gather)
    traj_ids: np.ndarray  # plan trajectory -> trajectory index (np.unique order)
    lengths: np.ndarray  # [T] images per plan trajectory
    row_traj: np.ndarray  # [N] plan row -> plan trajectory
    chunks: List[Tuple[int, int, List[Run]]]  # (row start, row end, runs), in plan rows

    @property
    def num_rows(self) -> int:
        return len(self.row_traj)

    def count_dtype(self):
        """Smallest unsigned dtype that holds a per-trajectory count."""
        longest = int(self.lengths.max()) if len(self.lengths) else 0
        return np.uint8 if longest <= 0xFF else np.uint16 if longest <= 0xFFFF else np.uint32

    def rows(self, x, r0: int, r1: int, cols):
        """Plan rows [r0, r1) of x restricted to ``cols`` (a slice or index array) as an array."""
        if self.order is None:
            block = x[r0:r1, cols] if isinstance(cols, slice) else x[r0:r1][:, cols]
        else:
            block = x[self.order[r0:r1], cols] if isinstance(cols, slice) else x[self.order[r0:r1]][:, cols]
        return np.asarray(block)


def make_plan(traj_of_row: np.ndarray, num_traj: int, max_chunk_rows: int = MAX_CHUNK_ROWS) -> TrajectoryPlan:
    """Plan over all rows; ``traj_of_row`` are trajectory indices 0..num_traj-1."""
    max_chunk_rows = int(min(max(1, max_chunk_rows), MAX_CHUNK_ROWS))
    lengths_by_id = np.bincount(traj_of_row, minlength=num_traj)
    traj_ids = np.lexsort((np.arange(num_traj), lengths_by_id))  # by length, then id
    lengths = lengths_by_id[traj_ids]
    rank = np.empty(num_traj, np.int64)
    rank[traj_ids] = np.arange(num_traj)
    order = np.argsort(rank[traj_of_row], kind="stable")  # rows of each trajectory keep their order
    row_traj = rank[traj_of_row][order].astype(np.int32 if num_traj < 2**31 else np.int64)
    if np.array_equal(order, np.arange(len(order))):
        order = None

    chunks = []
    starts = np.concatenate([[0], np.cumsum(lengths)])
    t, r = 0, 0
    while t < num_traj:
        length = int(lengths[t])
        if length > max_chunk_rows:  # a long trajectory: pieces, each its own chunk
            for p0 in range(0, length, max_chunk_rows):
                p = min(max_chunk_rows, length - p0)
                chunks.append((r + p0, r + p0 + p, [(0, 1, p, t)]))
            r += length
            t += 1
            continue
        # whole trajectories while they fit: runs of equal length
        take = int(np.searchsorted(starts, r + max_chunk_rows, side="right")) - 1 - t
        take = max(1, take)
        runs, a = [], 0
        u = t
        while u < t + take:
            length_u = int(lengths[u])
            m = int(np.searchsorted(lengths[u:t + take], length_u, side="right"))
            runs.append((a, m, length_u, u))
            a += m * length_u
            u += m
        chunks.append((r, r + a, runs))
        r += a
        t += take
    return TrajectoryPlan(order=order, traj_ids=traj_ids, lengths=lengths, row_traj=row_traj, chunks=chunks)


def add_segment_sums(mask: np.ndarray, runs: List[Run], out: np.ndarray):
    """out[trajectory] += number of True rows of ``mask`` (a chunk [R, B], at most 255 rows) in
    each piece of ``runs``."""
    m8 = mask.view(np.uint8)
    for a, m, length, t0 in runs:
        part = m8[a:a + m * length]
        if length == 1:
            out[t0:t0 + m] += part
        else:
            out[t0:t0 + m] += part.reshape(m, length, -1).sum(axis=1, dtype=np.uint8)
