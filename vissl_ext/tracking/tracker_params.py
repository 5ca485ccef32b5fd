"""The Region Tracker's parameters (Appendix B's R, Δ, threshold, pool size, ...), apart from the
tracker itself so that ``tools/track_regions.py --help`` shows their defaults without torch."""
from dataclasses import dataclass

from vissl_ext.config import dataclass_from_dict


@dataclass
class TrackerParams:
    num_regions: int = 100  # R: first R cached proposals per frame (the method's ranking)
    delta: int = 1  # Δ: match frame i to i+Δ (manifest positions; the extraction stride applies first)
    threshold: float = 0.6  # max Euclidean distance of unit-norm pooled features (range 0..2)
    pool_size: int = 3  # ROIAlign output pool_size x pool_size, flattened (keeps the layout)
    mutual: bool = True  # keep a match only when it is mutual (cycle i -> i+Δ -> i returns)
    min_track_len: int = 2  # a track needs two boxes to give a pair
    feature: str = "res4"  # VISSL feature name (layer3)
    input_short_side: int = 256  # trunk input short side (frames resized; 0: as stored)
    batch_size: int = 16  # frames per trunk forward

    def validate(self):
        if self.num_regions < 1 or self.delta < 1 or self.pool_size < 1 or self.batch_size < 1:
            raise ValueError("num_regions, delta, pool_size and batch_size must be >= 1")
        if not self.threshold > 0:
            raise ValueError(f"threshold must be > 0, got {self.threshold}")
        if self.min_track_len < 2:
            raise ValueError(f"min_track_len must be >= 2 (a track gives pairs), got {self.min_track_len}")
        if self.input_short_side < 0:
            raise ValueError("input_short_side must be >= 0")
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "TrackerParams":
        return dataclass_from_dict(cls, d, "tracker")
