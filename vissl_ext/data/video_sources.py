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

from vissl_ext.video.extraction import entries_for_directory, find_inputs
from vissl_ext.video.manifest import VideoEntry, VideoManifestError, load_manifest
from vissl_ext.data.sampling import (
    across_shot_pairs,
    other_shot_positions,
    pair_anchors,
    partner_choices,
    same_shot_pairs,
    uniform_positions,
)
from vissl_ext.video.shots import detect_shots_command, missing_shots_line, shot_of_positions, shot_starts
from vissl_ext.utils.validation_stamp import file_key, launcher_validated
from vissl_ext.data.video_config import validate_video_cfg, video_cfg
from vissl_ext.video.video_io import ReaderCache, VideoDecodeError, read_image, read_image_array
from vissl_ext.registry import DataSource, register_data_source


def manifest_path(path: str):
    """The manifest a DATA_PATHS entry names (a folder holding one: its manifest.json); None for
    a folder of videos indexed at start-up."""
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "manifest.json")):
        return os.path.join(path, "manifest.json")
    return None if os.path.isdir(path) else path


def load_videos(path: str, decoder: str) -> List[VideoEntry]:
    path = manifest_path(path) or path
    if os.path.isdir(path):
        logging.warning(f"{path}: indexing videos at start-up; tools/extract_frames.py --index-only writes a manifest once")
        entries, failures = entries_for_directory(path, decoder)
        if failures:
            logging.warning(f"{path}: {len(failures)} unreadable videos skipped, e.g. {failures[:3]}")
        return entries
    # the launcher checked every referenced file of these bytes just now: not again in each rank
    return load_manifest(path, check_files=not launcher_validated(path))


class _VideoSource(DataSource):
    """Shared reading logic; subclasses define the sample index."""

    def __init__(self, cfg, data_source, path, split, dataset_name):
        super().__init__(cfg, data_source, path, split, dataset_name)
        self.vcfg = video_cfg(cfg, split)
        validate_video_cfg(self.vcfg, f"config.DATA.{split}.VIDEO")
        self.manifest = manifest_path(path)  # None: a folder indexed at start-up
        self.shots_note = None  # pair sources: the header's line about videos without shots
        self.videos = self._load_videos(path)
        # shot number of every frame position (all 0 for a video without known shots)
        self.shot_ids = [shot_of_positions(v.frame_indices, shot_starts(v)) for v in self.videos]
        self._readers = ReaderCache()
        self.num_failed_reads = 0
        self.samples = self._build_samples()
        if not self.samples:
            raise ValueError(f"{data_source}: no usable sample in {path} (see the warnings above for skipped videos)")

    def _load_videos(self, path: str) -> List[VideoEntry]:
        return load_videos(path, self.vcfg["DECODER"])

    @classmethod
    def check_data_path(cls, cfg, path: str, split: str):
        """The launcher's check before any worker starts (vissl_ext.engines.preflight): the path exists;
        a manifest reads and its files are there; a folder to index holds videos or frame folders.
        Returns the stamp keys of the manifests validated in full (vissl_ext.utils.validation_stamp)."""
        if os.path.isdir(path) and not os.path.isfile(os.path.join(path, "manifest.json")):
            if not find_inputs([path]):
                raise VideoManifestError(f"{path} is an empty folder: no manifest.json, videos or frame folders in it")
            return []
        if os.path.isdir(path):
            path = os.path.join(path, "manifest.json")
        if not os.path.exists(path):
            raise VideoManifestError(f"{path} does not exist: give a manifest.json from tools/extract_frames.py, "
                                     f"or a folder of videos or frame folders")
        key = file_key(path)  # before reading: a change during the check leaves it unmatched in the ranks
        if not load_manifest(path):
            raise VideoManifestError(f"manifest {path} lists no video")
        return [key]

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
        k, scope = self.vcfg["PAIR_GAP"], self.vcfg["PAIR_SCOPE"]
        samples, too_short, gap_skips, cut_drops = [], [], 0, 0
        for vi, v in enumerate(self.videos):
            pairs, skipped, dropped = self.video_pairs(vi)
            gap_skips += skipped
            cut_drops += dropped
            if not pairs:
                too_short.append(v.id)
            samples += [(vi, a, b) for a, b in pairs]
        name = self.data_source
        if too_short:
            why = "fewer than two shots with frames" if scope == "across_shots" else "too short"
            logging.warning(f"{name}: {len(too_short)} videos have no pair at gap k={k}, scope {scope} ({why}), "
                            f"skipped: {too_short[:5]}")
        if gap_skips:
            logging.warning(f"{name}: {gap_skips} pairs skipped because the partner frame is missing (gaps)")
        self.num_short_videos = len(too_short)
        self.num_gap_skips = gap_skips
        self.num_cut_drops = cut_drops
        self._log_scope(samples)
        return samples

    # the header's line when PAIR_SCOPE=shot meets videos without shots: what it means, what follows detection
    NO_SHOTS_MEANS = "each counts as one shot, so their pairs may cross cuts"
    AFTER_DETECTION = ""

    def _log_scope(self, samples):
        """One start-up line: shots known, and pairs dropped at cuts (scope shot) or kept across
        them; under scope shot, also the header's line about videos without shots."""
        with_shots = [v for v in self.videos if v.shots]
        cuts = sum(len(v.shots["starts"]) - 1 for v in with_shots)
        scope = self.vcfg["PAIR_SCOPE"]
        msg = (f"{self.data_source}: PAIR_SCOPE={scope}; shots known for {len(with_shots)} of {len(self.videos)} "
               f"videos ({cuts} cuts)")
        if scope == "shot":
            self.shots_note = self._missing_shots_note()
        if not with_shots and scope != "across_shots":
            msg += "; each video is one shot (tools/detect_shots.py detects them): pairs as without shots"
        elif scope == "shot":
            msg += f"; {self.num_cut_drops} of {len(samples) + self.num_cut_drops} pairs straddle a cut and are dropped"
        elif scope == "video" and with_shots:
            straddle = sum(self.shot_ids[vi][a] != self.shot_ids[vi][b] for vi, a, b in samples)
            msg += f"; {straddle} pairs straddle a cut and are kept (scope video)"
        logging.info(msg)

    def _missing_shots_note(self):
        """The header's line when PAIR_SCOPE=shot meets videos without shots (None: all have them)."""
        if self.manifest:
            where, fix = self.manifest, detect_shots_command(self.manifest) + self.AFTER_DETECTION
        else:
            where = self.path
            fix = f"python tools/extract_frames.py {self.path} <out> --index-only (a manifest with shots; train on it)"
        return missing_shots_line(self.videos, where, f"PAIR_SCOPE=shot {self.NO_SHOTS_MEANS}", fix
                                  + f" (single-shot footage such as tracking datasets: config.DATA.{self.split}.VIDEO."
                                  f"PAIR_SCOPE=video)")

    def video_pairs(self, vi: int):
        """(pairs of video vi under PAIR_SCOPE, anchors whose partner is missing, pairs dropped at cuts)."""
        v, shot_ids, k = self.videos[vi], self.shot_ids[vi], self.vcfg["PAIR_GAP"]
        if self.vcfg["PAIR_SCOPE"] == "across_shots":
            return across_shot_pairs(v.frame_indices, shot_ids, k), 0, 0
        pairs, skipped = pair_anchors(v.frame_indices, k)
        if self.vcfg["PAIR_SCOPE"] == "shot":
            pairs, dropped = same_shot_pairs(pairs, shot_ids)
            return pairs, skipped, dropped
        return pairs, skipped, 0

    def pair_of(self, idx):
        """(video, pos_i, pos_j) of a sample: j = i+k, with k drawn from [PAIR_GAP, PAIR_GAP_MAX]
        when set (within the shot under scope shot), or any frame of another shot (across_shots)."""
        vi, a, b = self.samples[idx]
        v, shot_ids, scope = self.videos[vi], self.shot_ids[vi], self.vcfg["PAIR_SCOPE"]
        if scope == "across_shots":
            return vi, a, random.choice(other_shot_positions(shot_ids, a))
        k_max = self.vcfg["PAIR_GAP_MAX"]
        if k_max > self.vcfg["PAIR_GAP"]:
            choices = partner_choices(v.frame_indices, a, self.vcfg["PAIR_GAP"], k_max)
            if scope == "shot":
                choices = [c for c in choices if shot_ids[c] == shot_ids[a]]
            b = random.choice(choices) if choices else b
        return vi, a, b

    def _load(self, idx):
        vi, a, b = self.pair_of(idx)
        return self._read(self.videos[vi], [a, b])


@register_data_source("video_shot_triplets", with_subset=True)
class VideoShotTripletsSource(VideoFramePairsSource):
    """Three frames per sample, [z_i, z_{i+k}, z_j]: a temporal pair under PAIR_SCOPE (shot by
    default: one shot) plus z_j from another shot of the same video, redrawn at random on each
    read (VIVI's shot level). Videos with fewer than two shots holding frames give no sample
    (counted and logged at start-up). Follow with VideoFramesToViews and collate with
    shot_moco_collator: z_i is the query, z_{i+k} the frame-level key, z_j the shot-level key.
    """

    def _build_samples(self):
        pairs = super()._build_samples()
        multi = {vi for vi, ids in enumerate(self.shot_ids) if len(set(ids)) >= 2}
        samples = [s for s in pairs if s[0] in multi]
        self.num_single_shot_videos = len({s[0] for s in pairs} - multi)
        if self.num_single_shot_videos:
            logging.warning(f"video_shot_triplets: {self.num_single_shot_videos} videos have a single shot (no "
                            f"shot-level partner): their {len(pairs) - len(samples)} pairs are not used; detect shots "
                            f"with tools/detect_shots.py or train them with pretrain/frame_temporal")
        logging.info(f"video_shot_triplets: {len(samples)} samples from {len(multi)} videos with two or more shots")
        return samples

    def triplet_of(self, idx):
        """(video, pos_i, pos_{i+k}, pos_j): pos_j lies in another shot than pos_i."""
        vi, a, b = self.pair_of(idx)
        return vi, a, b, random.choice(other_shot_positions(self.shot_ids[vi], a))

    def _load(self, idx):
        vi, a, b, j = self.triplet_of(idx)
        return self._read(self.videos[vi], [a, b, j])
