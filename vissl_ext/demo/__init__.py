"""The demo behind ``make demo`` / ``python tools/demo.py`` (see :mod:`vissl_ext.demo.chain`)."""
from vissl_ext.demo.chain import main, packaged_videos, video_crops, parse_args, run, run_demo  # noqa: F401
