#!/usr/bin/env python
"""Weighted kNN top-1 of a trunk on labelled image folders (vissl_ext/downstream/knn_cli.py; --help)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout without pip install
from vissl_ext.downstream.knn_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
