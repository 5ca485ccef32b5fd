"""The RIS input error, shared by the numpy route (ris.py) and the torch route (ris_torch.py)."""


class RISInputError(ValueError):
    """Features, trajectories or classes that cannot give a meaningful score."""
