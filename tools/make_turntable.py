#!/usr/bin/env python
"""Generate a procedural turntable set of textured rotating objects (vissl_ext/study/turntable_cli.py; --help)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout without pip install
from vissl_ext.study.turntable_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
