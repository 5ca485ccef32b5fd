#!/usr/bin/env python
"""VISSL's launcher, with vissl_ext registered: same command line as VISSL's own.

    python tools/run_distributed_engines.py config=pretrain/frame_temporal \
        config.DATA.TRAIN.DATA_PATHS=[/data/frames/manifest.json]

Host configs (config=benchmark/linear_image_classification/..., config=pretrain/moco/...)
resolve as with VISSL's launcher.
"""
import os
import sys

# a checkout run without `pip install -e .` still finds the package
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# imported at top level on purpose: VISSL's spawned workers re-import this main module, and
# registration must happen there too
import vissl_ext  # noqa: E402,F401
from vissl_ext.engines.launcher import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
