"""Command lines of tools/build_ris_trajectories.py and tools/compute_ris.py."""
import argparse
import logging
import os
import sys

from vissl_ext.invariance.sets import DEFAULT_IMAGE_SIZE


def _logging():
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")


# --------------------------------------------------------------------------------- builders
def build_main(argv=None):
    from vissl_ext.invariance import builders
    from vissl_ext.invariance.manifest import ManifestError

    p = argparse.ArgumentParser(description="Write a RIS manifest (image, box, trajectory, class) from a dataset's "
                                            "native layout.")
    sub = p.add_subparsers(dest="layout", required=True)
    a = sub.add_parser("aloi", help="ALOI object folders (png*/<obj>/<obj>_r0.png | _l1c1 | _i110)")
    a.add_argument("--invariance", choices=list(builders.ALOI_PATTERNS), default=None,
                   help="checked against the file names (default: inferred from them)")
    g = sub.add_parser("got10k", help="GOT-10k train folder (sequence folders, list.txt)")
    g.add_argument("--seed", type=int, default=1992, help="frame choice per cover level (public code: 1992)")
    g.add_argument("--min-cover-span", type=int, default=4, help="keep videos whose cover levels span >= this")
    g.add_argument("--stride", type=int, default=1)
    g.add_argument("--max-videos", type=int, default=0)
    q = sub.add_parser("pascal3d", help="PASCAL3D+_release1.1 folder")
    q.add_argument("--invariance", choices=["instance", "instance_viewpoint"], required=True)
    f = sub.add_parser("folders", help="own data: root/<trajectory>/*.jpg or root/<class>/<trajectory>/*.jpg")
    f.add_argument("--invariance", default="custom", help="name of the invariance measured (table column)")
    f.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE)
    for s in (a, g, q, f):
        s.add_argument("root")
        s.add_argument("--out", required=True, help="manifest .json to write")
        s.add_argument("--verify", choices=["header", "full", "none"], default="header",
                       help="open every image (header: fast; full: decode) and skip unreadable ones / bad boxes")
        s.add_argument("--overwrite", action="store_true", help="rebuild even if --out exists")
    args = p.parse_args(argv)
    _logging()
    if os.path.exists(args.out) and not args.overwrite:
        print(f"{args.out} exists; nothing to do (--overwrite rebuilds it)")
        return 0
    try:
        if args.layout == "aloi":
            m = builders.build_aloi(args.root, args.invariance)
        elif args.layout == "got10k":
            m = builders.build_got10k(args.root, seed=args.seed, min_cover_span=args.min_cover_span,
                                      stride=args.stride, max_videos=args.max_videos or None)
        elif args.layout == "pascal3d":
            m = builders.build_pascal3d(args.root, args.invariance)
        else:
            m = builders.build_folders(args.root, args.invariance, args.image_size)
        if args.verify != "none":
            m = builders.verify_entries(m, full=args.verify == "full")
    except (ManifestError, FileNotFoundError, NotADirectoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    m.save(args.out)
    n_traj = len(set(m.trajectories))
    print(f"{args.out}: {len(m.entries)} images, {n_traj} trajectories, {len(set(m.classes))} classes "
          f"(set {m.set}, invariance {m.invariance}, {m.image_size}px); skipped: {m.skipped or 'none'}")
    return 0


# ---------------------------------------------------------------------------------- scoring
def _score_and_write(feats, trajectories, classes, model, set_name, invariance, out_dir, topk, chart, **extra):
    from vissl_ext.invariance.report import format_table, load_results, plot_chart, result_record, write_result
    from vissl_ext.invariance.ris import compute_ris

    result = compute_ris(feats, trajectories, classes, topk=topk)
    path = write_result(out_dir, result_record(result, model, set_name, invariance, **extra))
    records = load_results([out_dir])  # every model scored into this folder: one table, one chart
    print(format_table(records))
    print(f"written: {path}")
    if chart:
        print(f"chart: {plot_chart(records, os.path.join(out_dir, 'ris_chart.png'))}")
    return result


def compute_main(argv=None):
    from vissl_ext.invariance.features_io import load_features, load_reference_alldata
    from vissl_ext.invariance.manifest import load_ris_manifest
    from vissl_ext.invariance.report import format_table, load_results, plot_chart

    p = argparse.ArgumentParser(description="Top-K Representation Invariance Scores (paper Table 1).")
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
    t.add_argument("--arch", default="resnet50")
    t.add_argument("--weights", default="", help="state dict file (empty: random init, for smoke tests)")
    t.add_argument("--state-dict-key", default="", help="nested key of the state dict, e.g. state_dict")
    t.add_argument("--layer", default="avgpool", help="graph node (default: the pooled 2048-d ResNet-50 output)")
    t.add_argument("--image-size", type=int, default=0, help="default: the manifest's (128 GOT/ALOI, 224 PASCAL3D+)")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--workers", type=int, default=2)
    t.add_argument("--device", default="cpu")
    for x in (s, t):
        x.add_argument("--model", required=True, help="row label in the table")
        x.add_argument("--out", required=True, help="folder of results (JSON per model and set, table, chart)")
        x.add_argument("--topk", type=int, nargs="+", default=[10, 25])
        x.add_argument("--no-chart", action="store_true")
    r = sub.add_parser("report", help="table and chart of result JSONs (files or folders)")
    r.add_argument("results", nargs="+")
    r.add_argument("--chart", default="", help="PNG path")
    args = p.parse_args(argv)
    _logging()

    if args.cmd == "report":
        records = load_results(args.results)
        print(format_table(records))
        if args.chart:
            print(f"chart: {plot_chart(records, args.chart)}")
        return 0

    os.makedirs(args.out, exist_ok=True)
    if args.cmd == "score" and args.features.endswith((".pth", ".pt")) and not args.manifest:
        feats, traj, classes = load_reference_alldata(args.features)
        _score_and_write(feats, traj, classes, args.model, args.set or "alldata", args.invariance or "custom",
                         args.out, args.topk, not args.no_chart, features=os.path.abspath(args.features))
        return 0
    if not args.manifest:
        p.error("--manifest is required")
    m = load_ris_manifest(args.manifest)
    if args.cmd == "score":
        feats = load_features(args.features, num_images=len(m.entries), layer=args.layer)
        src = args.features
    else:
        from vissl_ext.invariance.torchvision_features import extract_torchvision_features, load_torchvision_model

        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{args.model}__{m.set}")
        src = os.path.join(args.out, f"features_{safe}_{args.layer}.npy")
        if os.path.exists(src):  # resumable: the expensive part is done once
            print(f"{src} exists: reusing it (delete it to extract again)")
            feats = load_features(src, num_images=len(m.entries))
        else:
            model = load_torchvision_model(args.arch, args.weights or None, args.state_dict_key)
            feats = extract_torchvision_features(model, m, src, layer=args.layer, image_size=args.image_size or None,
                                                 batch_size=args.batch_size, workers=args.workers, device=args.device)
    _score_and_write(feats, m.trajectories, m.classes, args.model, getattr(args, "set", None) or m.set,
                     getattr(args, "invariance", None) or m.invariance, args.out, args.topk, not args.no_chart,
                     manifest=m.path, features=os.path.abspath(src))
    return 0
