#!/usr/bin/env python
"""Label propagation on DAVIS, scored as J&F (vissl_ext/downstream/propagate_cli.py; --help)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout without pip install
from vissl_ext.downstream.propagate_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
