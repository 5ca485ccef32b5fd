"""The offline tools start without the training stack: ``--help`` of each, run in a fresh
interpreter, loads neither VISSL, classy_vision nor detectron2, nor torch (the tools that need
torch or a model load it when they get there). Start-up figures: benchmarks/bench_startup_tools.py."""
import json
import os
import subprocess
import sys

import pytest

from vissl_ext_testing import REPO

OFFLINE_TOOLS = ["extract_frames", "detect_shots", "propose_regions", "build_ris_trajectories", "build_cropped_boxes",
                 "build_gt_tracks", "visualize_tracks", "track_regions", "compute_ris"]
HEAVY = ("vissl", "classy_vision", "detectron2", "fairscale", "torch", "torchvision", "cv2")

PROBE = """
import contextlib, io, json, runpy, sys
sys.argv = [sys.argv[1], "--help"]
out = io.StringIO()
try:
    with contextlib.redirect_stdout(out):
        runpy.run_path(sys.argv[0], run_name="__main__")
    code = None
except SystemExit as e:
    code = e.code
print(json.dumps({"exit": code, "usage": out.getvalue().startswith("usage:"),
                  "loaded": [m for m in %r if m in sys.modules]}))
""" % (HEAVY,)


def loaded_after(args) -> dict:
    p = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("tool", OFFLINE_TOOLS)
def test_help_loads_no_training_stack(tool):
    out = loaded_after(["-c", PROBE, os.path.join(REPO, "tools", f"{tool}.py")])
    assert out["exit"] == 0 and out["usage"]
    assert out["loaded"] == []


def test_the_manifest_reader_loads_no_training_stack():
    out = loaded_after(["-c", "import json, sys, vissl_ext.video.manifest\n"
                              f"print(json.dumps({{'loaded': [m for m in {HEAVY!r} if m in sys.modules]}}))"])
    assert out["loaded"] == []

