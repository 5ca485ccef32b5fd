#!/usr/bin/env python
"""Crop every annotated box into a one-object image (vissl_ext/downstream/cropped_boxes_cli.py; --help)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout without pip install
from vissl_ext.downstream.cropped_boxes_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
