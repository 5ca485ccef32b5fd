"""Crop every annotated box into a one-object image (paper Table 2's dataset-bias sets).

    # Pascal Cropped Boxes (VOC07 SVM benchmark lists: <split>_images.npy / <split>_labels.npy)
    python tools/build_cropped_boxes.py voc /data/VOCdevkit --out /data/pascal_cropped_boxes \
        --years VOC2007 --splits trainval test
    # MSCOCO Boxes (pretraining folder: <out>/images/<category>/*.jpg, train_images.npy)
    python tools/build_cropped_boxes.py coco /data/coco/annotations/instances_train2017.json \
        --images /data/coco/train2017 --out /data/mscoco_boxes --min-size 32

Rerunning keeps the crops already written (resumable). Skipped entries (malformed XML, missing
fields, zero-area or too-small boxes, unknown classes, missing images) are counted in
<out>/summary.json and logged with their file.
"""
from vissl_ext.cli.common import parser, run_main
from vissl_ext.downstream.cropped_boxes import VOC_CLASSES, build_coco, build_voc


def parse_args(argv=None):
    p = parser(__doc__)
    sub = p.add_subparsers(dest="kind", required=True)
    for name in ("voc", "coco"):
        s = sub.add_parser(name)
        s.add_argument("--out", required=True, help="output folder")
        s.add_argument("--min-size", type=float, default=0, help="skip boxes with a side below this many pixels (0)")
        s.add_argument("--context", type=float, default=0.0,
                       help="grow each side by this fraction of the box size, clipped to the image (0)")
        s.add_argument("--quality", type=int, default=95, help="JPEG quality of the crops")
        s.add_argument("--no-progress", action="store_true")
        if name == "voc":
            s.add_argument("voc_root", help="VOCdevkit folder")
            s.add_argument("--years", nargs="+", default=["VOC2007"])
            s.add_argument("--splits", nargs="+", default=["trainval", "test"])
            s.add_argument("--classes", default=",".join(VOC_CLASSES),
                           help="comma-separated classes kept, in label order (default: the 20 VOC classes)")
            s.add_argument("--difficult", choices=["skip", "keep"], default="skip",
                           help="objects marked difficult: skipped (default, as VOC evaluation ignores them) or kept")
        else:
            s.add_argument("annotations", help="COCO instances JSON")
            s.add_argument("--images", required=True, help="folder the JSON's file_name entries are relative to")
            s.add_argument("--keep-crowd", action="store_true", help="also crop iscrowd boxes")
    return p.parse_args(argv)


def run(args) -> dict:
    common = dict(min_size=args.min_size, context=args.context, quality=args.quality, progress=not args.no_progress)
    if args.kind == "voc":
        return build_voc(args.voc_root, args.out, years=args.years, splits=args.splits,
                         classes=[c for c in args.classes.split(",") if c], difficult=args.difficult, **common)
    return build_coco(args.annotations, args.images, args.out, skip_crowd=not args.keep_crowd, **common)


def brief(summary: dict) -> dict:
    """The summary without its long lists (those stay in <out>/summary.json)."""
    if "splits" in summary:
        return {s: {k: v for k, v in d.items() if k != "skipped_examples"} for s, d in summary["splits"].items()}
    return {k: v for k, v in summary.items() if k not in ("skipped_examples", "classes")}


def main(argv=None) -> int:
    return run_main(parse_args, run, argv, shown=brief)
