"""config.DATA.<split>.VIDEO: how the video data sources read and pair frames; its defaults
and its validation at config time."""
from typing import Any, Dict

from vissl_ext.config import ConfigError, need_int, register_config_validator, with_defaults

VIDEO_SOURCE_NAMES = ("video_frames", "video_frame_pairs", "video_region_pairs", "video_shot_triplets")

VIDEO_DEFAULTS: Dict[str, Any] = {
    "FRAMES_PER_VIDEO": 3,  # baseline: N uniformly spaced frames per video (paper: 3)
    "PAIR_GAP": 1,  # k: pairs (z_i, z_{i+k}) with i mod k == 0
    "PAIR_GAP_MAX": 0,  # > PAIR_GAP: k drawn per sample from [PAIR_GAP, PAIR_GAP_MAX]
    "DECODER": "pyav",  # pyav | opencv (videos read directly, no extraction)
    "SHORT_SIDE": 0,  # resize frames so the short side is this (0: as stored)
    "MAX_RETRIES": 10,  # unreadable sample: try this many other samples before failing
    "MAX_REGION_PAIRS": 8,  # video_region_pairs: at most this many region pairs per frame pair reach the loss
    # region pairs drawn per frame pair before the crop; the collator keeps MAX_REGION_PAIRS of
    # those whose boxes survive both views' crops (0: REGION_CANDIDATE_FACTOR x MAX_REGION_PAIRS)
    "REGION_CANDIDATES": 0,
    # frame folders decoded by OpenCV into uint8 arrays instead of PIL images (set by
    # AUGMENT_BACKEND fast/device when every transform takes arrays: about 2x faster decoding)
    "FRAME_ARRAYS": False,
    # where a pair's second frame comes from: shot (never across a cut; a video without known
    # shots is one shot, i.e. today's behaviour) | video (ignore cuts) | across_shots (z_j from
    # another shot of the same video: VIVI's shot level)
    "PAIR_SCOPE": "shot",
}


# the shipped crop (scale 0.2-1, half of a box visible) keeps about half of the region pairs of a
# frame pair, and within a view they survive together or not: 8x leaves enough after the crops
# (benchmarks/bench_region_pairs.py measures the share that reaches the loss)
REGION_CANDIDATE_FACTOR = 8


def region_candidates(v: Dict[str, Any]) -> int:
    """Region pairs a video_region_pairs sample draws before the crop."""
    return v["REGION_CANDIDATES"] or REGION_CANDIDATE_FACTOR * v["MAX_REGION_PAIRS"]


def video_cfg(cfg, split: str) -> Dict[str, Any]:
    """config.DATA.<split>.VIDEO merged over the defaults (unknown keys rejected)."""
    return with_defaults(cfg["DATA"][split].get("VIDEO", {}), VIDEO_DEFAULTS, f"config.DATA.{split}.VIDEO")


def validate_video_cfg(v: Dict[str, Any], where: str):
    for key, minimum in (("FRAMES_PER_VIDEO", 1), ("PAIR_GAP", 1), ("PAIR_GAP_MAX", 0), ("SHORT_SIDE", 0),
                         ("MAX_RETRIES", 0), ("MAX_REGION_PAIRS", 1), ("REGION_CANDIDATES", 0)):
        need_int(v[key], f"{where}.{key}", minimum)
    if 0 < v["REGION_CANDIDATES"] < v["MAX_REGION_PAIRS"]:
        raise ConfigError(f"{where}.REGION_CANDIDATES must be 0 (auto) or >= MAX_REGION_PAIRS={v['MAX_REGION_PAIRS']}, "
                          f"got {v['REGION_CANDIDATES']!r}")
    if not (v["PAIR_GAP_MAX"] == 0 or v["PAIR_GAP_MAX"] >= v["PAIR_GAP"]):
        raise ConfigError(f"{where}.PAIR_GAP_MAX must be 0 (fixed k) or >= PAIR_GAP={v['PAIR_GAP']}, got {v['PAIR_GAP_MAX']!r}")
    if v["DECODER"] not in ("pyav", "opencv"):
        raise ConfigError(f"{where}.DECODER must be 'pyav' or 'opencv', got {v['DECODER']!r}")
    if not isinstance(v["FRAME_ARRAYS"], bool):
        raise ConfigError(f"{where}.FRAME_ARRAYS must be true or false, got {v['FRAME_ARRAYS']!r}")
    if v["PAIR_SCOPE"] not in ("shot", "video", "across_shots"):
        raise ConfigError(f"{where}.PAIR_SCOPE must be one of shot, video, across_shots, got {v['PAIR_SCOPE']!r}")


@register_config_validator
def _validate_video_splits(config):
    for split in ("TRAIN", "TEST"):
        if split not in config["DATA"]:
            continue
        sources = list(config["DATA"][split].get("DATA_SOURCES", []) or [])
        if "VIDEO" in config["DATA"][split] or any(s in VIDEO_SOURCE_NAMES for s in sources):
            v = video_cfg(config, split)
            validate_video_cfg(v, f"config.DATA.{split}.VIDEO")
            validate_pair_scope(v["PAIR_SCOPE"], sources, f"config.DATA.{split}.VIDEO.PAIR_SCOPE")


def validate_pair_scope(scope: str, sources, where: str):
    """across_shots pairs frames of two shots: no track crosses a cut (no region pair), and the
    shot-level sources draw their across-shot frame themselves."""
    for name in ("video_region_pairs", "video_shot_triplets"):
        if scope == "across_shots" and name in sources:
            raise ConfigError(f"{where}=across_shots does not apply to {name} (its frame pair stays within a "
                              f"shot{'; the shot-level frame comes from another shot anyway' if 'shot' in name else ': no track crosses a cut'}); "
                              f"use shot or video")
