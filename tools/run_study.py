#!/usr/bin/env python
"""Run a study file: models x evaluations, resumable, then the paper's tables (vissl_ext/study/run_study_cli.py; --help)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # a checkout without pip install
from vissl_ext.study.run_study_cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
