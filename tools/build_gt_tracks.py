#!/usr/bin/env python
"""Ground-truth tracks from a tracking dataset's annotations (vissl_ext/tracking/gt_tracks_cli.py; --help)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout without pip install
from vissl_ext.tracking.gt_tracks_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
