"""RIS unit statistics with torch on a device (CUDA for large N): exact thresholds by
``torch.kthvalue`` (a selection, not a sort) per column block, per-trajectory fires by
``index_add_``. Same numbers as the numpy route; on CPU it runs too (tests), but slower."""
import numpy as np
import torch

from vissl_ext.invariance.ris_errors import RISInputError, raise_not_finite

# device bytes per (image, unit) of a block: the block, its transposed copy, masks, counts
_BYTES_PER_ENTRY = 20
_CPU_BLOCK_BYTES = 256 << 20


def _block_width(n: int, d: int, device: torch.device, block_cols) -> int:
    if block_cols:
        return int(block_cols)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        budget = free // 2
    else:
        budget = _CPU_BLOCK_BYTES
    return int(max(1, min(d, budget // max(1, n * _BYTES_PER_ENTRY))))


def _to_device(x, c0: int, c1: int, device: torch.device) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x[:, c0:c1].to(device)
    return torch.from_numpy(np.ascontiguousarray(x[:, c0:c1])).to(device)


def torch_unit_stats(x, traj_of_row, n_traj: int, r_pos: int, r_neg: int, rates, *, device, block_cols=None) -> dict:
    """Thresholds [2, D] (values at ascending ranks r_pos, r_neg) and #(x < t+) [D] of x
    [N, D] (numpy, memmap or tensor); per-trajectory fires go to ``rates`` block by block."""
    device = torch.device(device)
    n, d = x.shape
    if n >= 2**24:  # fires are summed in float32: exact below 2**24 per trajectory
        raise RISInputError(f"the torch route counts up to 2**24 images, got {n}; use the numpy route (device=None)")
    width = _block_width(n, d, device, block_cols)
    traj_idx = torch.as_tensor(np.asarray(traj_of_row), dtype=torch.long, device=device)
    thresholds = None
    less = np.empty(d, np.int64)
    for c0 in range(0, d, width):
        c1 = min(d, c0 + width)
        xb = _to_device(x, c0, c1, device)
        if not bool(torch.isfinite(xb).all()):
            raise_not_finite(xb.cpu().numpy(), 0, c0)
        xs = xb.t().contiguous()  # [B, N]: selection along contiguous rows
        t_pos = torch.kthvalue(xs, r_pos + 1, dim=1).values
        t_neg = torch.kthvalue(xs, r_neg + 1, dim=1).values
        del xs
        if thresholds is None:
            thresholds = np.empty((2, d), t_pos.cpu().numpy().dtype)
        thresholds[0, c0:c1] = t_pos.cpu().numpy()
        thresholds[1, c0:c1] = t_neg.cpu().numpy()
        less[c0:c1] = (xb < t_pos).sum(dim=0).cpu().numpy()
        fires = []
        for mask in (xb > t_pos, xb < t_neg):
            acc = torch.zeros((n_traj, c1 - c0), dtype=torch.float32, device=device)
            acc.index_add_(0, traj_idx, mask.to(torch.float32))
            fires.append(acc.to(torch.int64).cpu().numpy())
            del mask, acc
        del xb
        rates.add(c0, c1, fires[0], fires[1])
    return {"thresholds": thresholds, "less": less}
