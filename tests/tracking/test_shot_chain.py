"""Shot-aware by default (issue 25): real clips joined end to end (cuts known) through the user's
chain, extract_frames -> propose_regions -> track_regions -> the region-pair data source. With
the defaults no track and no frame pair spans a cut; with --no-shots the same chain gives some,
and track_regions and the data source say that the videos have no shots."""
import logging

import pytest

from vissl_ext_testing import compose, extract
from vissl_ext.data.region_pairs import VideoRegionPairsSource
from vissl_ext.video.manifest import load_manifest
from vissl_ext.video.tracks_io import load_tracks_index, load_video_tracks

pytestmark = pytest.mark.slow  # ResNet-50 forwards of 2 x 50 small frames on CPU


def clip_of(frame_index):
    return frame_index // 40  # ground truth of the joined clip: 40 source frames per clip


def chain(joined_clip, out, caplog, **extract_flags):
    """(manifest entry, tracks, region-pair source, tracker summary, tracker warnings)."""
    from vissl_ext.tracking.propose_cli import parse_args as propose_args, run as propose
    from vissl_ext.tracking.track_cli import parse_args as track_args, run as track

    s = extract([joined_clip[0]], out / "frames", stride=4, short_side=64, **extract_flags)
    manifest = s["manifest"]
    assert propose(propose_args([manifest, str(out / "props"), "--ss-short-side", "64", "--top-r", "8",
                                 "--no-progress"]))["processed"] == 1
    # a threshold no distance reaches (unit-norm features are at most 2 apart), one-way matching:
    # every region links to the next frame, so only the cuts can end a track
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        summary = track(track_args([manifest, str(out / "props"), str(out / "tracks"), "--checkpoint", "random",
                                    "--num-regions", "4", "--threshold", "2.5", "--no-mutual",
                                    "--input-short-side", "64", "--no-progress"]))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    (v,) = load_manifest(manifest)
    _, files, _ = load_tracks_index(str(out / "tracks"))
    tracks = load_video_tracks(files[v.id], v)["tracks"]
    cfg = compose("config=pretrain/tiny/region_tracker_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{out / 'tracks'}]")
    src = VideoRegionPairsSource(cfg, "video_region_pairs", str(out / "tracks"), "TRAIN", "test")
    return v, tracks, src, summary, warnings


def spans(v, frames):
    return len({clip_of(v.frame_indices[p]) for p in frames}) > 1


def test_defaults_keep_tracks_and_pairs_within_shots_no_shots_does_not(joined_clip, tmp_path, caplog):
    v, tracks, src, summary, warnings = chain(joined_clip, tmp_path / "default", caplog)
    assert len(v.shots["starts"]) == 5  # detected by the defaults, in the extraction pass
    assert len(tracks) >= 4 * 5 and {clip_of(v.frame_indices[t["frames"][0]]) for t in tracks} == set(range(5))
    assert not [t["frames"] for t in tracks if spans(v, t["frames"])]
    assert summary["links_cut"] >= 4 and summary["videos_without_shots"] == 0
    assert not any("no shots recorded" in w for w in warnings) and src.shots_note is None
    assert len(src) > 0 and not [(a, b) for _, a, b in src.samples if spans(v, (a, b))]
    assert src.num_cut_drops == 4 and src.num_pairs_with_regions > 0  # k=1 at stride 4: one pair per join

    v, tracks, src, summary, warnings = chain(joined_clip, tmp_path / "no_shots", caplog, shots=False)
    assert v.shots is None
    crossing = [t for t in tracks if spans(v, t["frames"])]
    assert crossing and summary["links_cut"] == 0 and summary["videos_without_shots"] == 1
    (line,) = [w for w in warnings if "no shots recorded" in w]
    manifest = str(tmp_path / "no_shots" / "frames" / "manifest.json")
    assert "for 1 of 1 videos" in line and f"python tools/detect_shots.py {manifest}" in line
    straddle = [(a, b) for _, a, b in src.samples if spans(v, (a, b))]
    assert len(straddle) == 4 and src.num_cut_drops == 0
    assert "1 of 1 videos" in src.shots_note and f"tools/detect_shots.py {manifest}, then track again" in src.shots_note
    # the demo's count of tracks across cuts (detected shots) agrees with the ground truth's
    from vissl_ext.demo.chain import tracks_across_cuts

    counted = tracks_across_cuts(str(tmp_path / "default" / "frames" / "manifest.json"), str(tmp_path / "no_shots" / "tracks"))
    assert counted == {v.id: {"tracks": len(tracks), "across_cuts": len(crossing)}}
