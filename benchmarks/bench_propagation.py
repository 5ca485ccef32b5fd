#!/usr/bin/env python
"""Label propagation benchmark (one process): seconds per frame of tools/propagate_labels.py's
pipeline and the share of that time outside the trunk, with the windowed propagation of the
package (after) and the previous one (before: each target row against every column of the
context rows in reach, masked afterwards; kept below as the baseline), on the same res4
features in the same run. The two take the same products, but the BLAS sums a product in another
order for other matrix shapes, so they agree up to float rounding: the largest probability
difference and the feature cells whose label differs are reported.

    python benchmarks/bench_propagation.py                            # shared DAVIS-2016 sequences, short side 240
    python benchmarks/bench_propagation.py --tiles 4 6 8 12 16         # + the block size, on the first sequence
    python benchmarks/bench_propagation.py --long 80 --skip-before     # + an 80-frame 480p sequence through the CLI
    python benchmarks/bench_propagation.py --device cuda --long 80     # the same on a GPU

Stages per sequence: decode and resize (the CLI's _load_frames), trunk (ResNet-50 res4, stride 8,
random init: the speed does not depend on the weights), propagation, then what the CLI does after
it (bilinear upsampling, argmax, palette PNGs). Share outside the trunk = 1 - trunk / all stages.
--long builds a DAVIS-layout root of car-shadow played forward then backward (854x480, frames
and masks, symlinks in a temporary folder) and runs tools/propagate_labels.py on it at full size;
its summary.json gives seconds per frame and the share outside the trunk end to end.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vissl_ext  # noqa: E402,F401
from vissl_ext.downstream import davis_data as dd  # noqa: E402
from vissl_ext.downstream import propagate_cli as pc  # noqa: E402
from vissl_ext.downstream.davis_metrics import score_sequence, summarise  # noqa: E402
from vissl_ext.downstream.label_propagation import _context_frames, propagate_labels  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.environ.get("VISSL_EXT_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))


def propagate_rows(feats, first_labels, context=20, topk=10, temperature=0.07, radius=12):
    """The baseline: one target row at a time against all columns of the context rows within the
    radius (a [w, n x rows x w] matrix), the columns beyond the radius masked afterwards."""
    t_all, _, h, w = feats.shape
    feats = torch.nn.functional.normalize(feats.float(), dim=1)
    labels = [first_labels.float()]
    xs = torch.arange(w, device=feats.device)
    for t in range(1, t_all):
        ctx = _context_frames(t, context)
        ctx_feats = feats[ctx]
        ctx_labels = torch.stack([labels[i] for i in ctx])
        out = torch.empty_like(first_labels, dtype=torch.float32)
        for y in range(h):
            y0, y1 = max(0, y - radius), min(h, y + radius + 1)
            q = feats[t, :, y].T
            keys = ctx_feats[:, :, y0:y1].permute(0, 2, 3, 1).reshape(-1, feats.shape[1])
            vals = ctx_labels[:, :, y0:y1].permute(0, 2, 3, 1).reshape(-1, first_labels.shape[0])
            aff = q @ keys.T / temperature
            key_x = xs.repeat(len(ctx) * (y1 - y0))
            aff.masked_fill_((xs[:, None] - key_x[None, :]).abs() > radius, float("-inf"))
            top, idx = aff.topk(min(topk, aff.shape[1]), dim=1)
            weights = torch.softmax(top, dim=1)
            out[:, y] = torch.einsum("wk,wkl->lw", weights, vals[idx])
        labels.append(out)
    return torch.stack(labels)


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _after_propagation(probs, first, ids, size, out_dir, paths):
    """What the CLI does with the probabilities: upsample, argmax, object ids, palette PNGs."""
    import torch.nn.functional as F

    preds = [first]
    for t in range(1, len(probs)):
        up = F.interpolate(probs[t:t + 1].float().cpu(), size=size, mode="bilinear", align_corners=False)
        preds.append(ids[up[0].argmax(0).numpy()])
    os.makedirs(out_dir, exist_ok=True)
    for p, lab in zip(paths, preds):
        dd.write_labels(os.path.join(out_dir, os.path.basename(p)[:-4] + ".png"), lab)
    return preds


def bench_sequences(args, trunk, work):
    """Before and after on the shared sequences: per-stage seconds, s/frame, share outside the trunk."""
    import torch.nn.functional as F

    root = os.path.join(SHARED, "video_davis2016_sample")
    stages = {"decode": 0.0, "trunk": 0.0, "after_propagation": 0.0, "propagation_before": 0.0,
              "propagation_after": 0.0}
    frames_total, per_seq, equal, max_diff, cells_differ, feats_by_seq = 0, {}, True, 0.0, 0, {}
    for seq in dd.sequences(root):
        paths = dd.frame_paths(root, seq)[:args.max_frames]
        t0 = time.perf_counter()
        frames, x = pc._load_frames(paths, args.short_side)
        first = dd.read_labels(dd.annotation_path(root, seq, paths[0]))
        stages["decode"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        with torch.no_grad():
            feats = torch.cat([trunk(x[i:i + 8].to(args.device)) for i in range(0, len(x), 8)])
        _sync(args.device)
        stages["trunk"] += time.perf_counter() - t0
        ids = np.unique(first)
        onehot = torch.from_numpy(first[None] == ids[:, None, None]).float()[None]
        small = F.interpolate(onehot, size=feats.shape[2:], mode="area")[0].to(feats.device)
        feats_by_seq[seq] = (feats, small)
        with torch.no_grad():
            t0 = time.perf_counter()
            after = propagate_labels(feats, small)
            _sync(args.device)
            stages["propagation_after"] += time.perf_counter() - t0
            if not args.skip_before:
                t0 = time.perf_counter()
                before = propagate_rows(feats, small)
                _sync(args.device)
                stages["propagation_before"] += time.perf_counter() - t0
                equal &= torch.equal(before, after)
                max_diff = max(max_diff, (before - after).abs().max().item())
                cells_differ += int((before.argmax(1) != after.argmax(1)).sum())
        t0 = time.perf_counter()
        preds = _after_propagation(after, first, ids, frames[0].shape[:2], os.path.join(work, seq), paths)
        stages["after_propagation"] += time.perf_counter() - t0
        per_seq[seq] = score_sequence([dd.read_labels(dd.annotation_path(root, seq, p)) for p in paths], preds)
        frames_total += len(paths)
        print(f"{seq}: {len(paths)} frames, features {tuple(feats.shape)}", flush=True)
    common = stages["decode"] + stages["trunk"] + stages["after_propagation"]
    res = {"frames": frames_total, "stage_seconds": {k: round(v, 2) for k, v in stages.items()},
           "JF": {k: round(v, 4) for k, v in summarise(per_seq).items() if k in ("J_mean", "F_mean", "JF_mean")}}
    for which in ("after", "before"):
        if which == "before" and args.skip_before:
            continue
        total = common + stages[f"propagation_{which}"]
        res[which] = {"seconds_per_frame": round(total / frames_total, 3),
                      "share_outside_trunk": round(1 - stages["trunk"] / total, 3),
                      "propagation_seconds_per_frame": round(stages[f"propagation_{which}"] / frames_total, 3)}
    if not args.skip_before:
        res["before_equals_after_bitwise"], res["max_abs_difference"] = bool(equal), max_diff
        res["feature_cells_whose_label_differs"] = cells_differ
        res["propagation_speedup"] = round(stages["propagation_before"] / stages["propagation_after"], 2)
    return res, next(iter(feats_by_seq.values()))


def bench_tiles(args, feats, small):
    """Propagation seconds per frame at each block size, on one sequence's features."""
    ref, res = None, {}
    for tile in args.tiles:
        t0 = time.perf_counter()
        with torch.no_grad():
            got = propagate_labels(feats, small, tile=tile)
        _sync(args.device)
        ref = got if ref is None else ref
        res[tile] = {"propagation_seconds_per_frame": round((time.perf_counter() - t0) / len(feats), 3),
                     "max_abs_difference_to_first_tile": (ref - got).abs().max().item()}
    return res


def bench_long(args, work):
    """An n-frame 480p sequence (car-shadow forward then backward) through tools/propagate_labels.py."""
    src = os.path.join(SHARED, "video_davis2016_sample")
    paths = dd.frame_paths(src, "car-shadow")
    order = (paths + paths[::-1]) * (args.long // (2 * len(paths)) + 1)
    root = os.path.join(work, "long")
    for sub in ("JPEGImages", "Annotations"):
        os.makedirs(os.path.join(root, sub, "480p", "car-shadow-loop"))
    for i, p in enumerate(order[:args.long]):
        os.symlink(p, os.path.join(root, "JPEGImages", "480p", "car-shadow-loop", f"{i:05d}.jpg"))
        os.symlink(dd.annotation_path(src, "car-shadow", p),
                   os.path.join(root, "Annotations", "480p", "car-shadow-loop", f"{i:05d}.png"))
    out = os.path.join(work, "long_out")
    cmd = [sys.executable, os.path.join(ROOT, "tools", "propagate_labels.py"), root, "--out", out, "--random-init",
           "--device", args.device]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    with open(os.path.join(out, "summary.json")) as f:
        s = json.load(f)
    return {"frames": s["frames"], "size": "854x480", "features": "ResNet-50 res4, stride 8, random init",
            "seconds_per_frame": round(s["seconds_per_frame"], 3),
            "share_outside_trunk": round(s["share_outside_trunk"], 3), "wall_seconds_with_startup": round(wall, 1),
            "JF_mean": round(s["JF_mean"], 4), "command": " ".join(cmd[1:])}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--short-side", type=int, default=240, help="frame short side for the sequences (default 240)")
    p.add_argument("--max-frames", type=int, default=None, help="frames per sequence (default all, 40)")
    p.add_argument("--tiles", type=int, nargs="*", default=[], help="block sizes to time on the first sequence")
    p.add_argument("--long", type=int, default=0, help="also run the CLI on an N-frame 480p sequence (e.g. 80)")
    p.add_argument("--skip-before", action="store_true", help="do not time the baseline (it is slow)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    if not os.path.isdir(os.path.join(SHARED, "video_davis2016_sample")):
        sys.exit(f"error: {SHARED}/video_davis2016_sample not found (set VISSL_EXT_SHARED_DATA)")
    trunk, _ = pc.build_trunk(pc.parse_args([SHARED, "--out", "unused", "--random-init", "--device", args.device]))
    res = {"device": args.device, "torch_threads": torch.get_num_threads(), "short_side": args.short_side,
           "load_average_before": os.getloadavg()}
    with tempfile.TemporaryDirectory() as work:  # each part printed when done: a long run shows its first ones
        res["sequences"], first_seq = bench_sequences(args, trunk, work)
        print(json.dumps({"sequences": res["sequences"], "load_average": os.getloadavg()}), flush=True)
        if args.long:
            res["long"] = bench_long(args, work)
            print(json.dumps({"long": res["long"], "load_average": os.getloadavg()}), flush=True)
        if args.tiles:
            res["tiles"] = bench_tiles(args, *first_seq)
    res["load_average_after"] = os.getloadavg()
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
