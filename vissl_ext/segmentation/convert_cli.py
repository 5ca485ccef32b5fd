"""Convert a VISSL ResNet checkpoint's trunk to detectron2 weights (vissl_ext/segmentation/convert.py does the work).

    python tools/convert_vissl_to_detectron2.py checkpoints/model_final_checkpoint_phase199.torch \
        --output weights/trunk_d2.pkl
    # then: MODEL.WEIGHTS weights/trunk_d2.pkl in a detectron2 config (RESNETS.STRIDE_IN_1X1 False)
"""
from vissl_ext.cli.common import parser, run_main
from vissl_ext.utils.checkpoint_layouts import add_encoder_flag
from vissl_ext.utils.safe_load import add_trust_pickle_flag
from vissl_ext.segmentation.convert import convert_checkpoint  # its ConversionError is a ValueError: a user error


def parse_args(argv=None):
    p = parser(__doc__)
    p.add_argument("input", help="a ResNet checkpoint in any layout docs/export.md lists (VISSL checkpoint, "
                                 "torchvision/timm, MoCo, DINO, solo-learn, ...)")
    add_encoder_flag(p)
    p.add_argument("--output", "-o", required=True, help=".pkl (detectron2 model-zoo format) or .pth")
    p.add_argument("--prefix", default="",
                   help="prefix for exact names, e.g. 'backbone.' (default: none, and detectron2 matches "
                        "names heuristically, as for its own converted torchvision weights)")
    add_trust_pickle_flag(p)
    return p.parse_args(argv)


def run(args) -> dict:
    state = convert_checkpoint(args.input, args.output, prefix=args.prefix, trust_pickle=args.trust_pickle,
                               encoder=args.encoder)
    return {"ok": True, "output": args.output, "tensors": len(state)}


def main(argv=None) -> int:
    return run_main(parse_args, run, argv)
