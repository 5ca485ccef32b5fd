#!/usr/bin/env bash
# The checks of issue 19 that need a CUDA GPU, in one run, from the repository root:
#
#   bash scripts/gpu_checks.sh            # not run on a GPU yet: no timing to give
#
#   1. AMP training (AMP_TYPE=pytorch) of region_tracker (also channels_last + pool_then_project)
#      and shot_temporal through VISSL's launcher: test_mixed_precision_trains_on_a_gpu
#   2. benchmarks/bench_train_step.py --device cuda: fp32 against AMP and AMP + channels_last
#   3. scripts/device_sync_check.py: one step under torch.cuda.set_sync_debug_mode("warn")
#
# Without CUDA: one error line, exit 2, nothing run. CI=true makes a missing ../shared/data a
# failure (not a skip); VISSL_EXT_SHARED_DATA names it elsewhere. Exit 1 when any check fails.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "error: no CUDA device here (torch.cuda.is_available() is False): scripts/gpu_checks.sh runs the GPU checks only" >&2
    exit 2
fi
failed=()
CI=true "$PY" -m pytest -q \
    "tests/test_region_tracker_runs.py::test_mixed_precision_trains_on_a_gpu" \
    "tests/test_shot_temporal_runs.py::test_mixed_precision_trains_on_a_gpu" || failed+=("AMP training tests")
"$PY" benchmarks/bench_train_step.py --device cuda --batch 64 || failed+=("bench_train_step --device cuda")
"$PY" scripts/device_sync_check.py || failed+=("device_sync_check")
if ((${#failed[@]})); then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
echo "all GPU checks passed"
