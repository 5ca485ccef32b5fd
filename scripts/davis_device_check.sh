#!/bin/bash
# DAVIS label propagation on a GPU (docs/davis.md): where a CUDA device is, time the propagation
# (benchmarks/bench_propagation.py: shared sequences before/after, the 80-frame 480p sequence
# through the CLI, block sizes) and check that the CLI's --device cuda masks score as its CPU ones.
#   bash scripts/davis_device_check.sh            # from the checkout; data: $VISSL_EXT_SHARED_DATA or ../shared/data
# Refuses with one error line (exit 2) where CUDA is not available.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${VISSL_EXT_SHARED_DATA:-../shared/data}
python -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 2)" ||
  { echo "error: no CUDA device here (torch.cuda.is_available() is False)"; exit 2; }
python benchmarks/bench_propagation.py --device cuda --long 80 --tiles 8 16 32
out=$(mktemp -d)
for dev in cuda cpu; do
  python tools/propagate_labels.py "$DATA/video_davis2016_sample" --out "$out/$dev" --random-init --short-side 240 \
    --device $dev > "$out/$dev.json"
done
python - "$out" <<'PY'
import json, sys
a, b = (json.load(open(f"{sys.argv[1]}/{d}/summary.json")) for d in ("cuda", "cpu"))
print(json.dumps({d: {k: s[k] for k in ("J_mean", "F_mean", "JF_mean", "seconds_per_frame", "share_outside_trunk")}
                  for d, s in (("cuda", a), ("cpu", b))}, indent=1))
# cuDNN's convolutions are not the CPU's bit for bit: the scores agree closely, not exactly
assert abs(a["JF_mean"] - b["JF_mean"]) < 0.01, (a["JF_mean"], b["JF_mean"])
PY
