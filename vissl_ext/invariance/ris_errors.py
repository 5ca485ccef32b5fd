"""The RIS input errors, shared by the numpy route (ris.py) and the torch route (ris_torch.py)."""
import numpy as np


class RISInputError(ValueError):
    """Features, trajectories or classes that cannot give a meaningful score."""


def raise_not_finite(chunk: np.ndarray, r0: int = 0, c0: int = 0):
    """``chunk``: the features from image r0 and unit c0 on, holding a NaN or inf."""
    r, c = np.argwhere(~np.isfinite(chunk))[0]
    raise RISInputError(
        f"features contain NaN or inf (first at image {r0 + r}, unit {c0 + c}: {chunk[r, c]}); "
        "RIS thresholds are undefined. Check the model output / the feature file.")
