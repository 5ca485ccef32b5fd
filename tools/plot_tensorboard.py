#!/usr/bin/env python
"""Render TensorBoard scalars as a PNG (vissl_ext/hooks/tensorboard_plot_cli.py; --help)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout without pip install
from vissl_ext.hooks.tensorboard_plot_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
