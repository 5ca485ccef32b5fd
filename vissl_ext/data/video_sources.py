"""VISSL data sources over videos: single frames (baseline MoCo v2 on N frames per video) and
temporal frame pairs (Frame Temporal Invariance).

``DATA_PATHS`` entries are a manifest (``manifest.json`` from tools/extract_frames.py), a folder
holding one, or a folder of videos / frame folders (indexed at start-up). Settings come from
``config.DATA.<split>.VIDEO`` (defaults and checks: vissl_ext/data/video_config.py).

A sample that cannot be read (corrupt frame, truncated video) is logged with its file, counted,
and replaced by another sample; training goes on. Videos with no usable sample (shorter than
the pair gap, unreadable) are counted and logged at start-up.
"""
import logging
import os
import random
from typing import List

from vissl_ext.data.extraction import entries_for_directory, find_inputs
from vissl_ext.data.manifest import VideoEntry, VideoManifestError, load_manifest
from vissl_ext.data.sampling import pair_anchors, partner_choices, uniform_positions
from vissl_ext.data.video_config import validate_video_cfg, video_cfg
from vissl_ext.data.video_io import ReaderCache, VideoDecodeError, read_image, read_image_array
from vissl_ext.registry import DataSource, register_data_source


def load_videos(path: str, decoder: str) -> List[VideoEntry]:
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "manifest.json")):
        path = os.path.join(path, "manifest.json")
    if os.path.isdir(path):
        logging.warning(f"{path}: indexing videos at start-up; tools/extract_frames.py --index-only writes a manifest once")
        entries, failures = entries_for_directory(path, decoder)
        if failures:
            logging.warning(f"{path}: {len(failures)} unreadable videos skipped, e.g. {failures[:3]}")
        return entries
    return load_manifest(path)


class _VideoSource(DataSource):
    """Shared reading logic; subclasses define the sample index."""

    def __init__(self, cfg, data_source, path, split, dataset_name):
        super().__init__(cfg, data_source, path, split, dataset_name)
        self.vcfg = video_cfg(cfg, split)
        validate_video_cfg(self.vcfg, f"config.DATA.{split}.VIDEO")
        self.videos = self._load_videos(path)
        self._readers = ReaderCache()
        self.num_failed_reads = 0
        self.samples = self._build_samples()
        if not self.samples:
            raise ValueError(f"{data_source}: no usable sample in {path} (see the warnings above for skipped videos)")

    def _load_videos(self, path: str) -> List[VideoEntry]:
        return load_videos(path, self.vcfg["DECODER"])

    @classmethod
    def check_data_path(cls, cfg, path: str, split: str):
        """The launcher's check before any worker starts (vissl_ext.preflight): the path exists;
        a manifest reads and its files are there; a folder to index holds videos or frame folders."""
        if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "manifest.json")):
            if not find_inputs([path]):
                raise VideoManifestError(f"{path} is an empty folder: no manifest.json, videos or frame folders in it")
            return
        if os.path.isdir(path):
            path = os.path.join(path, "manifest.json")
        if not os.path.exists(path):
            raise VideoManifestError(f"{path} does not exist: give a manifest.json from tools/extract_frames.py, "
                                     f"or a folder of videos or frame folders")
        if not load_manifest(path):
            raise VideoManifestError(f"manifest {path} lists no video")

    def _build_samples(self) -> list:
        raise NotImplementedError

    def _read(self, v: VideoEntry, positions: List[int]):
        short = self.vcfg["SHORT_SIDE"]
        if v.is_frame_folder:
            read = read_image_array if self.vcfg["FRAME_ARRAYS"] else read_image
            return [read(v.frame_path(p), short) for p in positions]
        decoder = v.extra.get("decoder", self.vcfg["DECODER"])
        reader = self._readers.get(v.source, v.video_info(), decoder)
        return reader.read([v.frame_indices[p] for p in positions], short)

    def _load(self, idx: int):
        raise NotImplementedError

    def __getitem__(self, idx: int):
        # VISSL passes numpy.int64 indices when DATA_LIMIT >= 0, and random.Random() rejects
        # numpy integers on Python >= 3.11: seed from a Python int
        idx = int(idx)
        tries = self.vcfg["MAX_RETRIES"]
        for attempt in range(tries + 1):
            try:
                return self._load(idx), True
            except VideoDecodeError as e:
                self.num_failed_reads += 1
                logging.warning(f"{self.data_source}: sample {idx} unreadable, skipped ({e}); "
                                f"{self.num_failed_reads} skipped in this worker")
                # another sample, deterministic in idx so that workers agree on nothing shared
                idx = random.Random(idx * 7919 + attempt).randrange(len(self))
        raise VideoDecodeError(f"{self.data_source}: {tries + 1} samples in a row unreadable; data in {self.path} looks broken")

    def __len__(self):
        return len(self.samples)

    def get_image_paths(self):
        return [self.videos[s[0]].id for s in self.samples]


@register_data_source("video_frames", with_subset=True)
class VideoFramesSource(_VideoSource):
    """One frame per sample: FRAMES_PER_VIDEO uniformly spaced frames of every video."""

    def _build_samples(self):
        n = self.vcfg["FRAMES_PER_VIDEO"]
        samples, short = [], 0
        for vi, v in enumerate(self.videos):
            pos = uniform_positions(v.num_frames, n)
            short += len(pos) < n
            samples += [(vi, p) for p in pos]
        if short:
            logging.warning(f"video_frames: {short} videos have fewer than {n} frames; all their frames are used")
        return samples

    def _load(self, idx):
        vi, p = self.samples[idx]
        return self._read(self.videos[vi], [p])[0]


@register_data_source("video_frame_pairs", with_subset=True)
class VideoFramePairsSource(_VideoSource):
    """Two frames per sample, (z_i, z_{i+k}) with i mod k == 0, returned as a list [z_i, z_{i+k}].

    Follow it with the VideoFramesToViews transform: each frame becomes its own view and gets
    its own augmentation, so VISSL's MoCo collator, loss and hook train
    query = t_i(z_i) against key = t_j(z_{i+k}) unchanged.
    """

    def _build_samples(self):
        k = self.vcfg["PAIR_GAP"]
        samples, too_short, gap_skips = [], [], 0
        for vi, v in enumerate(self.videos):
            pairs, skipped = pair_anchors(v.frame_indices, k)
            gap_skips += skipped
            if not pairs:
                too_short.append(v.id)
            samples += [(vi, a, b) for a, b in pairs]
        if too_short:
            logging.warning(f"video_frame_pairs: {len(too_short)} videos have no pair at gap k={k} "
                            f"(too short), skipped: {too_short[:5]}")
        if gap_skips:
            logging.warning(f"video_frame_pairs: {gap_skips} pairs skipped because the partner frame is missing (gaps)")
        self.num_short_videos = len(too_short)
        self.num_gap_skips = gap_skips
        return samples

    def pair_of(self, idx):
        """(video, pos_i, pos_{i+k}) of a sample; k drawn from [PAIR_GAP, PAIR_GAP_MAX] when set."""
        vi, a, b = self.samples[idx]
        v = self.videos[vi]
        k_max = self.vcfg["PAIR_GAP_MAX"]
        if k_max > self.vcfg["PAIR_GAP"]:
            choices = partner_choices(v.frame_indices, a, self.vcfg["PAIR_GAP"], k_max)
            b = random.choice(choices) if choices else b
        return vi, a, b

    def _load(self, idx):
        vi, a, b = self.pair_of(idx)
        return self._read(self.videos[vi], [a, b])
