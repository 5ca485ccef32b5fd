"""Order statistics per column through the RIS engine's own block machinery, for tests that
check that machinery against full sorts (it was a production function used only by tests)."""
from typing import Dict, Sequence

import numpy as np

from vissl_ext.invariance import order_stats
from vissl_ext.invariance.segments import make_plan


def column_order_stats(x, ranks: Sequence[int], sample_rows: int = order_stats.SAMPLE_ROWS,
                       chunk_bytes: int = order_stats.CHUNK_BYTES, seed: int = 0) -> Dict[str, np.ndarray]:
    """For each rank r in ``ranks`` (0-based, ascending), per column: the value at sorted index r
    (``values[i]``, same dtype as x) and how many entries are strictly smaller (``less[i]``).

    Equals ``np.sort(x, axis=0)[r]`` exactly (ties included). ``x``: [N, D] real array or
    memmap without NaN.
    """
    n, d = x.shape
    ranks = [int(r) for r in ranks]
    for r in ranks:
        if not 0 <= r < n:
            raise ValueError(f"rank {r} outside [0, {n})")
    plan = make_plan(np.zeros(n, np.int64), 1, order_stats.rows_per_chunk(d, x.dtype.itemsize, chunk_bytes))
    st = order_stats.block_stats(x, slice(0, d), plan, ranks, [order_stats.ABOVE] * len(ranks),
                                 order_stats.sample_rows_for(n, sample_rows, seed))
    fallback = st.num_fallback if n > sample_rows else np.full(len(ranks), d)
    return {"values": st.values, "less": st.less, "num_fallback_columns": fallback}
