"""RIS on the demo's own data: *tracked regions over time* as temporal trajectories.

Each Region Tracker track with at least ``min_len`` boxes becomes one trajectory whose images
are the crops of its boxes, frame after frame; a trajectory's class is its video. A unit is
then invariant when it keeps firing on the same region as it moves and changes through a clip,
the paper's temporal invariance measured on the demo's clips (not one of the paper's sets).
Features are the pooled res5 output (2048-d) of each model's ResNet-50 trunk.
"""
import os
from collections import OrderedDict
from typing import Dict, Optional, Sequence

from vissl_ext.video.manifest import load_manifest
from vissl_ext.invariance.manifest import RISEntry, RISManifest
from vissl_ext.video.tracks_io import load_tracks_index, load_video_tracks
from vissl_ext.tracking.visualize import select_tracks

SET_NAME = "demo_tracks"
INVARIANCE = "tracked_regions"


def evenly(items: Sequence, count: int) -> list:
    if len(items) <= count:
        return list(items)
    return [items[round(i * (len(items) - 1) / (count - 1))] for i in range(count)]


def build_track_trajectories(tracks_dir: str, out_path: str, min_len: int = 3, max_tracks: int = 6,
                             max_boxes: int = 6, image_size: int = 56) -> RISManifest:
    """Write a RIS manifest: per video the ``max_tracks`` longest tracks of >= ``min_len``
    boxes, each sampled to at most ``max_boxes`` evenly spaced boxes (keeps CPU time small)."""
    manifest_path, videos, _ = load_tracks_index(tracks_dir)
    entries = {e.id: e for e in load_manifest(manifest_path)}
    out = []
    for vid, path in sorted(videos.items()):
        entry = entries[vid]
        doc = load_video_tracks(path, entry)
        for t in select_tracks(doc, max_tracks=max_tracks, min_len=min_len):
            picks = evenly(list(zip(t["frames"], t["boxes"])), max_boxes)
            out += [RISEntry(image=entry.frame_path(p), box=[x1, y1, x2 - x1, y2 - y1], trajectory=f"{vid}/{t['id']}",
                             cls=vid) for p, (x1, y1, x2, y2) in picks]
    m = RISManifest(entries=out, set=SET_NAME, invariance=INVARIANCE, image_size=image_size, source=os.path.abspath(tracks_dir))
    m.save(out_path)
    return m


def score_models(manifest: RISManifest, models: "OrderedDict[str, Optional[str]]", work_dir: str,
                 topk: Sequence[int] = (10, 25), seed: int = 0) -> Dict[str, list]:
    """``{name: VISSL checkpoint or None (random init, seeded)}`` -> ``{name: [result record]}``.
    Features are written to ``work_dir`` (extracted again on every call: checkpoints change)."""
    from vissl_ext.invariance.report import result_record
    from vissl_ext.invariance.ris import compute_ris
    from vissl_ext.invariance.torchvision_features import (extract_torchvision_features, load_torchvision_model,
                                                           seeded_random_model)

    os.makedirs(work_dir, exist_ok=True)
    results = OrderedDict()
    for name, ckpt in models.items():
        path = os.path.join(work_dir, f"features_{name}.npy")
        if ckpt is None:
            net = seeded_random_model("resnet50", seed)
        else:
            net = load_torchvision_model("resnet50", ckpt)
        feats = extract_torchvision_features(net, manifest, path, layer="avgpool", batch_size=32, workers=0)
        result = compute_ris(feats, manifest.trajectories, manifest.classes, topk=list(topk))
        results[name] = [result_record(result, name, manifest.set, manifest.invariance, checkpoint=ckpt,
                                       features=os.path.abspath(path))]
    return results
