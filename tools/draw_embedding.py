#!/usr/bin/env python
"""Draw features of a RIS manifest in 2-D (t-SNE), trajectories joined (vissl_ext.invariance.embedding_cli.py; --help)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout without pip install
from vissl_ext.invariance.embedding_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
