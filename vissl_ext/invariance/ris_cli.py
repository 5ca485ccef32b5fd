"""Top-K Representation Invariance Scores (paper Table 1) for features on disk or a torchvision model.

    python tools/compute_ris.py score --manifest m.json --features feats.npy --model mocov2 --out results/
    python tools/compute_ris.py torchvision --manifest m.json --weights r50.pth --model sup --out results/
    python tools/compute_ris.py torchvision --manifest m.json --weights moco_v2_800ep_pretrain.pth.tar --model mocov2 --out results/
    python tools/compute_ris.py torchvision --manifest m.json --arch resnet50 --no-weights --seed 0 --model random --out results/
    python tools/compute_ris.py torchvision --manifest m.json --weights r50.pth --model sup --out results/ --device cuda \
        --slurm --slurm-shards 16 --partition learnfair --gpus-per-task 1        # array job, then merge + score
    python tools/compute_ris.py torchvision --manifest m.json --weights r50.pth --model sup --out results/ --shard 3/16
    python tools/compute_ris.py report results/ --chart results/chart.png

``torchvision --shard i/n`` extracts only block i of n of the manifest's images into
``<out>/features_<model>__<set>_<layer>_shards/`` (resumable) and scores nothing; the same command
without ``--shard`` merges the n shards into ``<out>/features_<model>__<set>_<layer>.npy`` and scores.
``--slurm`` does both: the shards as an array job (a rerun submits only unfinished ones), then the merge.
"""
import logging
import os
import sys

from vissl_ext.cli.common import output_dir, parse_shard, parser, run_main
from vissl_ext.utils.checkpoint_layouts import add_encoder_flag
from vissl_ext.utils.safe_load import add_trust_pickle_flag
from vissl_ext.cli.shard_jobs import add_slurm_args, check_slurm_args, strip_slurm_options, submit_and_merge


def parse_args(argv=None):
    p = parser(__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score", help="score features already on disk")
    s.add_argument("--features", required=True,
                   help=".npy/.npz [N, D] in manifest order, a VISSL extract folder, or the public code's alldata.pth")
    s.add_argument("--manifest", help="RIS manifest (not needed for alldata.pth)")
    s.add_argument("--layer", default=None, help="layer of a VISSL extract folder (default: the only one)")
    s.add_argument("--set", default=None, help="set name (default: the manifest's)")
    s.add_argument("--invariance", default=None, help="invariance name (default: the manifest's)")
    t = sub.add_parser("torchvision", help="extract features of a torchvision model, then score")
    t.add_argument("--manifest", required=True)
    t.add_argument("--arch", default="auto",
                   help="torchvision architecture; auto (default): the ResNet the weights' trunk matches, "
                        "resnet50 with --no-weights")
    w = t.add_mutually_exclusive_group(required=True)
    w.add_argument("--weights", default="",
                   help="a ResNet checkpoint in any layout docs/export.md lists (torchvision, timm, MoCo official, "
                        "VISSL checkpoints and model zoo, ClassyVision/PIRL, solo-learn, Lightning, DINO, our "
                        ".safetensors export): found without key rules")
    w.add_argument("--no-weights", action="store_true",
                   help="random init: the random baseline of the paper's tables (drawn from --seed)")
    t.add_argument("--seed", type=int, default=None,
                   help="with --no-weights: seed of the random init, same weights in every process (default 0)")
    t.add_argument("--state-dict-key", default="",
                   help="only look below this nested key (dotted), for a file holding several trunks")
    add_encoder_flag(t)
    t.add_argument("--layer", default="avgpool", help="graph node (default: the pooled 2048-d ResNet-50 output)")
    t.add_argument("--image-size", type=int, default=0, help="default: the manifest's (128 GOT/ALOI, 224 PASCAL3D+)")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--workers", type=int, default=2, help="data-loader workers; on CPU at most the cores available")
    t.add_argument("--device", default="cpu")
    t.add_argument("--shard", default=None,
                   help="i/n: extract only block i of n of the manifest's images (no scores); the same command "
                        "without --shard merges the n shards and scores")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_slurm_args(t)
    for x in (s, t):
        x.add_argument("--model", required=True, help="row label in the table")
        x.add_argument("--out", required=True, help="folder of results (JSON per model and set, table, chart)")
        x.add_argument("--topk", type=int, nargs="+", default=[10, 25])
        x.add_argument("--no-chart", action="store_true")
        add_trust_pickle_flag(x)
    r = sub.add_parser("report", help="table and chart of result JSONs (files or folders)")
    r.add_argument("results", nargs="+")
    r.add_argument("--chart", default="", help="PNG path")
    args, extra = p.parse_known_args(argv)
    if extra:
        if args.cmd != "torchvision" and (strip_slurm_options(extra) != extra
                                          or any(a.split("=")[0] == "--shard" for a in extra)):
            p.exit(2, f"error: --slurm and --shard are options of `compute_ris.py torchvision` (feature extraction); "
                      f"`{args.cmd}` reads what is on disk already\n")
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.cmd == "torchvision" and args.seed is not None and not args.no_weights:
        p.error("--seed sets the random init: use it with --no-weights")
    if args.cmd == "score" and not args.manifest and not _is_alldata(args.features):
        p.error("--manifest is required")
    return args


def _is_alldata(features: str) -> bool:
    return features.endswith((".pth", ".pt"))


def _score_and_write(feats, trajectories, classes, model, set_name, invariance, out_dir, topk, chart, **extra):
    from vissl_ext.invariance.report import format_table, load_results, plot_chart, result_record, write_result
    from vissl_ext.invariance.ris import compute_ris

    result = compute_ris(feats, trajectories, classes, topk=topk)
    path = write_result(out_dir, result_record(result, model, set_name, invariance, **extra))
    records = load_results([out_dir])  # every model scored into this folder: one table, one chart
    print(format_table(records))
    print(f"written: {path}")
    summary = {"ok": True, "result": path}
    if chart:
        summary["chart"] = plot_chart(records, os.path.join(out_dir, "ris_chart.png"))
        print(f"chart: {summary['chart']}")
    return summary


def _loader_workers(args) -> int:
    """On CPU the loader's workers take cores from the model: at most as many as there are."""
    if args.device != "cpu":
        return args.workers
    from vissl_ext.invariance.ris import default_threads

    cores = default_threads()
    if args.workers > cores:
        logging.warning(f"--workers {args.workers}: {cores} cores here, using {cores} data-loader workers")
    return min(args.workers, cores)


def run(args) -> dict:
    """Scores (or reports); prints the table of every result in the output folder."""
    from vissl_ext.invariance.features_io import load_features, load_reference_alldata
    from vissl_ext.invariance.manifest import load_ris_manifest
    from vissl_ext.invariance.report import format_table, load_results, plot_chart

    if args.cmd == "report":
        missing = [p for p in args.results if not os.path.exists(p)]
        if missing:
            raise FileNotFoundError(f"no such result file or folder: {', '.join(missing)} (compute_ris.py score/"
                                    f"torchvision --out, or config=benchmark/ris/... write them)")
        records = load_results(args.results)
        print(format_table(records))
        summary = {"ok": True, "results": len(records)}
        if args.chart:
            summary["chart"] = plot_chart(records, args.chart)
            print(f"chart: {summary['chart']}")
        return summary

    if args.cmd == "score" and not args.manifest:  # the public code's alldata.pth (parse_args checked)
        feats, traj, classes = load_reference_alldata(args.features, trust_pickle=args.trust_pickle)
        output_dir(args.out)  # created once the inputs read: a failed run leaves no empty folder
        return _score_and_write(feats, traj, classes, args.model, args.set or "alldata", args.invariance or "custom",
                                args.out, args.topk, not args.no_chart, features=os.path.abspath(args.features))
    shard = parse_shard(args.shard) if getattr(args, "shard", None) else None
    if getattr(args, "slurm", False):  # before the manifest, the model or any job
        check_slurm_args(args)
        if args.device != "cpu" and args.gpus_per_task < 1:
            raise ValueError(f"--device {args.device} on the cluster needs --gpus-per-task 1")
    m = load_ris_manifest(args.manifest)
    if args.cmd == "score":
        feats = load_features(args.features, num_images=len(m.entries), layer=args.layer)
        src = args.features
        output_dir(args.out)
    else:
        from vissl_ext.invariance.feature_shards import num_batches

        if args.batch_size < 1:
            raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
        num_shards = shard[1] if shard else args.slurm_shards if args.slurm else 1
        most = num_batches(len(m.entries), args.batch_size)
        if num_shards > most:
            raise ValueError(f"{num_shards} shards for the {len(m.entries)} images of {m.path} in batches of "
                             f"{args.batch_size}: a shard is whole batches, so at most {most} shards")
        output_dir(args.out)  # features are written there
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{args.model}__{m.set}")
        src = os.path.join(args.out, f"features_{safe}_{args.layer}.npy")
        if os.path.exists(src):  # resumable: the expensive part is done once
            print(f"{src} exists: reusing it (delete it to extract again)")
            if shard:
                return {"ok": True, "shard": f"{shard[0]}/{shard[1]}", "merged": src}
            feats = load_features(src, num_images=len(m.entries))
        else:
            feats = _torchvision_features(args, m, src, shard)
            if isinstance(feats, dict):  # a shard, or the array job's summary: nothing to score here
                return feats
    return _score(args, m, feats, src)


def _score(args, m, feats, src) -> dict:
    return _score_and_write(feats, m.trajectories, m.classes, args.model, getattr(args, "set", None) or m.set,
                            getattr(args, "invariance", None) or m.invariance, args.out, args.topk, not args.no_chart,
                            manifest=m.path, features=os.path.abspath(src), **_init(args))


def _torchvision_features(args, m, src, shard):
    """Features of the torchvision model, written to ``src``: extracted here, or merged from
    shards (``--shard`` runs, or ``--slurm``'s array job); a dict (summary) where nothing is to score."""
    from vissl_ext.invariance import feature_shards as fs
    from vissl_ext.invariance.torchvision_features import (build_torchvision_model, check_layer,
                                                           extract_torchvision_features, seeded_random_model)

    if args.no_weights:
        args.arch = "resnet50" if args.arch == "auto" else args.arch
        model = seeded_random_model(args.arch, 0 if args.seed is None else args.seed)
    else:  # the result JSON records the architecture used
        model, args.arch = build_torchvision_model(args.arch, args.weights, args.state_dict_key, encoder=args.encoder,
                                                   trust_pickle=args.trust_pickle)
    size = args.image_size or m.image_size

    def extract(path, rows=None):
        return extract_torchvision_features(model, m, path, layer=args.layer, image_size=size,
                                            batch_size=args.batch_size, workers=_loader_workers(args),
                                            device=args.device, rows=rows, progress=not args.no_progress)

    folder = fs.shards_folder(src)
    found = fs.shard_counts(folder)
    if not (shard or args.slurm or found):
        return extract(src)
    check_layer(model, args.layer)  # before any job is submitted
    settings = fs.shard_settings(m, model, args.layer, size, args.batch_size)
    if shard:
        s = fs.extract_shard(extract, folder, *shard, settings)
        print(f"shard {s['shard']}: rows {s['rows'][0]}..{s['rows'][1] - 1} in {s['features']}"
              f"{' (reused)' if s['reused'] else ''}; run the command without --shard once all are done")
        return s
    if args.slurm:
        return submit_and_merge("vissl_ext.invariance.ris_cli", args.argv, args, folder, lambda: _score(
            args, m, fs.merge_shards(folder, args.slurm_shards, src, settings), src))
    complete = [n for n, ids in sorted(found.items()) if ids == list(range(n))]
    if not complete:
        n, ids = max(found.items())
        raise ValueError(f"{folder}: shards {sorted(set(range(n)) - set(ids))} of {n} are missing; extract them "
                         f"(--shard i/{n}) and run this again to merge, or delete {folder} to extract here")
    return fs.merge_shards(folder, complete[0], src, settings)


def _init(args) -> dict:
    """Where the model's weights came from, kept in the result JSON."""
    if getattr(args, "no_weights", False):
        return {"init": f"random, seed {0 if args.seed is None else args.seed}", "arch": args.arch}
    if args.cmd == "torchvision":
        return {"weights": os.path.abspath(args.weights), "arch": args.arch}
    return {}


def main(argv=None) -> int:
    return run_main(parse_args, run, argv, shown=None)  # run prints the table
