#!/usr/bin/env python
"""Convert a VISSL ResNet trunk to detectron2 weights (vissl_ext/segmentation/convert_cli.py; --help)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout without pip install
from vissl_ext.segmentation.convert_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
