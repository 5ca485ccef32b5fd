"""Write a RIS manifest (image, optional box, trajectory, class) from a dataset's native layout.

    python tools/build_ris_trajectories.py aloi /data/aloi_red4_view/png4 --out /data/ris/aloi_viewpoint.json
    python tools/build_ris_trajectories.py got10k /data/GOT-10k/train --out /data/ris/got10k_occlusion.json
    python tools/build_ris_trajectories.py pascal3d /data/PASCAL3D+_release1.1 --invariance instance --out ...
    python tools/build_ris_trajectories.py folders /data/my_trajectories --invariance deformation --out ...
    python tools/build_ris_trajectories.py folders /data/flat_views --csv /data/views.csv --invariance viewpoint --out ...

folders: root/<trajectory>/*.jpg (class = trajectory), root/<class>/<trajectory>/*.jpg, or a flat
folder with --csv (a header row and the columns file,trajectory,class). A flat folder without a
CSV, or a layout giving one class, is refused: RIS needs trajectories in at least 2 classes.
"""
import os

from vissl_ext.cli.common import parser, run_main
from vissl_ext.invariance import builders
from vissl_ext.invariance.sets import DEFAULT_IMAGE_SIZE


def parse_args(argv=None):
    p = parser(__doc__)
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
    f.add_argument("--csv", default="", help="flat folder: CSV with the columns file,trajectory,class "
                                             "(file relative to ROOT)")
    for s in (a, g, q, f):
        s.add_argument("root")
        s.add_argument("--out", required=True, help="manifest .json to write")
        s.add_argument("--verify", choices=["header", "full", "none"], default="header",
                       help="open every image (header: fast; full: decode) and skip unreadable ones / bad boxes")
        s.add_argument("--overwrite", action="store_true", help="rebuild even if --out exists")
    return p.parse_args(argv)


def run(args) -> dict:
    """Builds and writes the manifest; prints one line about it. RISManifestError (a ValueError)
    and missing folders are user errors."""
    if os.path.exists(args.out) and not args.overwrite:
        print(f"{args.out} exists; nothing to do (--overwrite rebuilds it)")
        return {"ok": True, "manifest": args.out, "written": False}
    if args.layout == "aloi":
        m = builders.build_aloi(args.root, args.invariance)
    elif args.layout == "got10k":
        m = builders.build_got10k(args.root, seed=args.seed, min_cover_span=args.min_cover_span,
                                  stride=args.stride, max_videos=args.max_videos or None)
    elif args.layout == "pascal3d":
        m = builders.build_pascal3d(args.root, args.invariance)
    elif args.csv:
        m = builders.build_csv(args.root, args.csv, args.invariance, args.image_size)
    else:
        m = builders.build_folders(args.root, args.invariance, args.image_size)
    if args.verify != "none":
        m = builders.verify_entries(m, full=args.verify == "full")
    m.save(args.out)
    summary = {"ok": True, "manifest": args.out, "written": True, "images": len(m.entries),
               "trajectories": len(set(m.trajectories)), "classes": len(set(m.classes)), "set": m.set,
               "invariance": m.invariance, "image_size": m.image_size, "skipped": m.skipped}
    print(f"{args.out}: {summary['images']} images, {summary['trajectories']} trajectories, {summary['classes']} "
          f"classes (set {m.set}, invariance {m.invariance}, {m.image_size}px); skipped: {m.skipped or 'none'}")
    return summary


def main(argv=None) -> int:
    return run_main(parse_args, run, argv, shown=None)  # run prints its one line
