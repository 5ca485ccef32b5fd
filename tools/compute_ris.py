#!/usr/bin/env python
"""Top-K Representation Invariance Scores (vissl_ext/invariance/ris_cli.py; --help)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout without pip install
from vissl_ext.invariance.ris_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
