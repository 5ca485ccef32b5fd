#!/usr/bin/env python
"""Convert a VISSL ResNet checkpoint's trunk to detectron2 weights (see vissl_ext.segmentation.convert).

    python tools/convert_vissl_to_detectron2.py checkpoints/model_final_checkpoint_phase199.torch \
        --output weights/trunk_d2.pkl
    # then: MODEL.WEIGHTS weights/trunk_d2.pkl in a detectron2 config (RESNETS.STRIDE_IN_1X1 False)
"""
import argparse
import logging
import sys

import vissl_ext  # noqa: F401  (compat fixes)
from vissl_ext.segmentation.convert import ConversionError, convert_checkpoint


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="VISSL checkpoint (.torch), consolidated trunk dict or torchvision ResNet .pth")
    p.add_argument("--output", "-o", required=True, help=".pkl (detectron2 model-zoo format) or .pth")
    p.add_argument("--prefix", default="",
                   help="prefix for exact names, e.g. 'backbone.' (default: none, and detectron2 matches "
                        "names heuristically, as for its own converted torchvision weights)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        state = convert_checkpoint(args.input, args.output, prefix=args.prefix)
    except (ConversionError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output}: {len(state)} tensors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
