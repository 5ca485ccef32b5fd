"""The ``video_region_pairs`` data source: temporal frame pairs (z_i, z_{i+k}) with the boxes of
every track seen in both frames (Region Tracker and Ground Truth Tracks models).

``DATA_PATHS`` entries are tracks directories (or their ``index.json``) from
tools/track_regions.py or tools/build_gt_tracks.py; the index names the video manifest. Frame
pairs follow the same rules as ``video_frame_pairs`` (config.DATA.<split>.VIDEO); any two boxes
of one track are a positive region pair. A sample carries up to ``REGION_CANDIDATES`` of them
(8 x ``MAX_REGION_PAIRS`` by default); ``region_moco_collator`` keeps ``MAX_REGION_PAIRS`` of
those whose boxes survived both views' crops. Frame pairs without a common track are kept: they
train the frame-level term alone.
"""
import logging
import random
from typing import Dict, List

import numpy as np

from vissl_ext.data.transforms.box_transforms import RegionPair, image_size
from vissl_ext.video.manifest import VideoEntry, load_manifest
from vissl_ext.video.tracks_io import TracksError, load_tracks_index, load_video_tracks
from vissl_ext.utils.validation_stamp import launcher_validated
from vissl_ext.data.video_config import region_candidates
from vissl_ext.data.video_sources import VideoFramePairsSource
from vissl_ext.registry import register_data_source


def boxes_by_position(tracks: List[dict]) -> Dict[int, Dict[int, List[float]]]:
    """{frame position: {track id: box}} of one video's tracks."""
    at: Dict[int, Dict[int, List[float]]] = {}
    for t in tracks:
        for p, b in zip(t["frames"], t["boxes"]):
            at.setdefault(p, {})[t["id"]] = b
    return at


@register_data_source("video_region_pairs", with_subset=True)
class VideoRegionPairsSource(VideoFramePairsSource):
    """Samples are :class:`RegionPair` objects; follow with RegionPairToViews and the box-aware
    transforms of vissl_ext.data.transforms.box_transforms, and collate with region_moco_collator."""

    NO_SHOTS_MEANS = ("each counts as one shot, so their frame pairs, and the tracks the tracker made without "
                      "shots, may cross cuts")
    AFTER_DETECTION = ", then track again (tools/track_regions.py, a new output folder)"

    def _load_videos(self, path: str) -> List[VideoEntry]:
        manifest, files, doc = load_tracks_index(path)
        self.manifest = manifest
        videos = load_manifest(manifest, check_files=not launcher_validated(manifest))
        self.tracks_kind = doc.get("kind")
        self._boxes_at, self._frame_size, kept, missing, bad = [], [], [], [], []
        for v in videos:
            if v.id not in files:
                missing.append(v.id)
                continue
            try:
                t = load_video_tracks(files[v.id], v)
            except TracksError as e:
                bad.append(str(e))
                logging.warning(f"video_region_pairs: skipping video {v.id}: {e}")
                continue
            kept.append(v)
            self._boxes_at.append(boxes_by_position(t["tracks"]))
            self._frame_size.append(tuple(t["frame_size"]))
        if missing:
            logging.warning(f"video_region_pairs: {len(missing)} videos of {manifest} have no tracks in {path} "
                            f"(e.g. {missing[:3]}); their frame pairs are not used")
        self.num_videos_without_tracks, self.num_bad_tracks = len(missing), len(bad)
        return kept

    @classmethod
    def check_data_path(cls, cfg, path: str, split: str):
        """Before any worker starts: the tracks index reads and its frame manifest is usable.
        The per-video tracks files are the ranks' (a bad one is a counted, logged skip)."""
        manifest, files, _ = load_tracks_index(path)
        if not files:
            raise ValueError(f"tracks index of {path} lists no video")
        return VideoFramePairsSource.check_data_path(cfg, manifest, split)

    def _build_samples(self):
        k = self.vcfg["PAIR_GAP"]
        samples, with_regions, gap_skips, cut_drops = [], 0, 0, 0
        for vi, v in enumerate(self.videos):
            pairs, skipped, dropped = self.video_pairs(vi)
            gap_skips += skipped
            cut_drops += dropped
            at = self._boxes_at[vi]
            for a, b in pairs:
                samples.append((vi, a, b))
                with_regions += bool(set(at.get(a, ())) & set(at.get(b, ())))
        self.num_gap_skips = gap_skips
        self.num_cut_drops = cut_drops
        self.num_pairs_with_regions = with_regions
        logging.info(f"video_region_pairs: {len(samples)} frame pairs at k={k}, {with_regions} with at least one "
                     f"region pair ({self.tracks_kind} tracks)")
        self._log_scope(samples)
        return samples

    def _load(self, idx):
        vi, a, b = self.pair_of(idx)
        frames = self._read(self.videos[vi], [a, b])
        at = self._boxes_at[vi]
        ids = sorted(set(at.get(a, ())) & set(at.get(b, ())))
        # candidates, not the cap: the crops drop about half; the collator caps what survives
        n = region_candidates(self.vcfg)
        if len(ids) > n:
            ids = sorted(random.sample(ids, n))
        W, H = self._frame_size[vi]
        boxes = []
        for p, img in zip((a, b), frames):
            # tracks refer to the frames as stored; frames read at another size scale them
            w, h = image_size(img)  # PIL image, or uint8 array (VIDEO.FRAME_ARRAYS)
            sx, sy = w / W, h / H
            bx = np.asarray([at[p][t] for t in ids], np.float32).reshape(-1, 4)
            boxes.append(bx * np.asarray([sx, sy, sx, sy], np.float32))
        return RegionPair(frames, boxes, np.asarray(ids, np.int64), self.vcfg["MAX_REGION_PAIRS"])
