"""Test utilities shared by the test folders (importable: pytest.ini puts tests/ on sys.path).

    from vissl_ext_testing import shared_path, extract, compose, run_engine
"""

import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.environ.get("VISSL_EXT_SHARED_DATA", os.path.join(os.path.dirname(REPO), "shared", "data"))

if REPO not in sys.path:
    sys.path.insert(0, REPO)

import vissl_ext  # noqa: E402,F401  (registers every component, applies compat fixes)


def shared_path(*parts: str) -> str:
    """Path under ../shared/data; skips the calling test with a reason when it is absent."""
    p = os.path.join(SHARED_DATA, *parts)
    if not os.path.exists(p):
        pytest.skip(f"needs {p} (../shared/data is not beside this checkout)")
    return p


def extract(inputs, out, **kw):
    """Run tools/extract_frames.py's extraction in-process; returns its summary dict."""
    from types import SimpleNamespace

    from vissl_ext.data.extract_cli import run

    args = dict(output=str(out), inputs=[str(i) for i in inputs], merge=False, stride=1, fps=0.0, short_side=96,
                quality=90, max_frames=0, decoder="pyav", index_only=False, shard=None, workers=1, no_progress=True)
    args.update(kw)
    return run(SimpleNamespace(**args))


def compose(*overrides):
    """A composed VISSL config (AttrDict) through our launcher's compose + validation."""
    from vissl_ext.launcher import compose_config

    return compose_config(list(overrides))[1]


def run_engine(overrides, cwd, timeout=600, env=None):
    """tools/run_distributed_engines.py in a subprocess; returns (returncode, combined output).
    ``env``: extra environment variables."""
    import subprocess

    cmd = [sys.executable, os.path.join(REPO, "tools", "run_distributed_engines.py"), *overrides]
    full_env = dict(os.environ, **(env or {}))
    p = subprocess.run(cmd, cwd=str(cwd), capture_output=True, text=True, timeout=timeout, env=full_env)
    return p.returncode, p.stdout + p.stderr
