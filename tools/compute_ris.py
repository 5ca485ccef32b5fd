#!/usr/bin/env python
"""Top-K Representation Invariance Scores for features on disk or a torchvision model.

    python tools/compute_ris.py score --manifest m.json --features feats.npy --model mocov2 --out results/
    python tools/compute_ris.py torchvision --manifest m.json --arch resnet50 --weights r50.pth --model sup --out results/
    python tools/compute_ris.py report results/ --chart results/chart.png
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vissl_ext  # noqa: E402,F401
from vissl_ext.invariance.cli import compute_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(compute_main())
