"""The demo's track picture: one row per video, evenly spaced frames with the longest tracks
drawn on them (vissl_ext.tracking.visualize), small enough to commit (palette PNG)."""
from typing import Optional

from PIL import Image, ImageDraw

from vissl_ext.video.manifest import load_manifest
from vissl_ext.video.tracks_io import load_tracks_index, load_video_tracks
from vissl_ext.tracking.visualize import choose_positions, draw_frames, select_tracks
from vissl_ext.utils.atomic_io import atomic_open


def track_sheet(tracks_dir: str, path: str, videos: int = 3, frames: int = 6, max_tracks: int = 5,
                min_len: int = 3, height: int = 96) -> Optional[str]:
    """Write the sheet to ``path``; returns it, or None when no video has a track to draw."""
    manifest_path, files, _ = load_tracks_index(tracks_dir)
    entries = {e.id: e for e in load_manifest(manifest_path)}
    docs = [(vid, load_video_tracks(p, entries[vid])) for vid, p in sorted(files.items())]
    # the videos with the most drawable tracks show the tracker best
    docs = sorted(docs, key=lambda d: -len(select_tracks(d[1], max_tracks, min_len)))[:videos]
    rows = []
    for vid, doc in docs:
        tracks = select_tracks(doc, max_tracks, min_len)
        if not tracks:
            continue
        imgs = draw_frames(entries[vid], tracks, choose_positions(tracks, entries[vid].num_frames, frames), width=2)
        imgs = [im.resize((max(1, round(im.width * height / im.height)), height)) for im in imgs]
        row = Image.new("RGB", (sum(im.width for im in imgs), height + 14), (0, 0, 0))
        x = 0
        for im in imgs:
            row.paste(im, (x, 14))
            x += im.width
        ImageDraw.Draw(row).text((4, 1), f"{vid}: {len(doc['tracks'])} tracks, longest {len(tracks)} drawn",
                                 fill=(255, 255, 255))
        rows.append(row)
    if not rows:
        return None
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height for r in rows)), (0, 0, 0))
    y = 0
    for r in rows:
        sheet.paste(r, (0, y))
        y += r.height
    with atomic_open(path, "wb") as f:
        sheet.quantize(colors=128).save(f, format="PNG", optimize=True)
    return path
