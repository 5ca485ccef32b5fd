#!/usr/bin/env bash
# Install detectron2 v0.6 for the ADE20K semantic-segmentation benchmark, from package registries
# only, pinned and verified. Idempotent: returns in about a second when it is already installed.
#
#   PYTHON=python bash scripts/install_detectron2.sh          # registry build (no C++ ops)
#   D2_SOURCE=/path/to/detectron2 bash scripts/install_detectron2.sh
#                                                              # upstream checkout, the usual way
#                                                              # (pip install -e, compiles _C)
#   D2_FORCE=1 ...                                             # rebuild even if installed
#   D2_VERIFY=1 ...                                            # when installed: run the check
#
# detectron2 has no wheel on PyPI. The sdist pb1-detectron2==0.6 holds upstream v0.6's Python
# files but not detectron2/layers/csrc, so its setup.py cannot compile detectron2._C. We build it
# with ext_modules=[]: the semantic-segmentation path (SemanticSegmentor, sem-seg heads, ResNet
# backbone, DatasetMapper, SemSegEvaluator, DefaultTrainer) uses no compiled op. Left out (they
# raise ImportError on use): deformable conv (DeformConv, ModulatedDeformConv), ROIAlignRotated,
# rotated-box IoU / nms_rotated, the C++ fast COCO evaluator (COCOEvaluator(use_fast_impl=False)
# works), and the compiler entries of collect_env. ROIAlign and nms come from torchvision in v0.6
# and do work. Runtime fixes for this stack live in vissl_ext/segmentation/d2_compat.py.
set -euo pipefail

PYTHON="${PYTHON:-python}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
D2_SDIST="pb1-detectron2==0.6"
D2_SDIST_FILE="pb1-detectron2-0.6.tar.gz"
D2_SDIST_SHA256="5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"

# Import detectron2 and run its semantic-segmentation path on CPU (a train step of the
# SemanticSegmentor with a sem-seg head, inference, and SemSegEvaluator) with our runtime fixes.
verify() {
    REPO="$REPO" "$PYTHON" - <<'PY'
import importlib.util, os, tempfile
import numpy as np
# Load the fixes by path: vissl_ext may not be installed yet when this script runs.
def load(name, *path):
    spec = importlib.util.spec_from_file_location(name, os.path.join(os.environ["REPO"], "vissl_ext", *path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
load("_compat", "utils", "compat.py").fix_numpy_aliases()
load("_d2_compat", "segmentation", "d2_compat.py").apply()
import torch, detectron2
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.evaluation import SemSegEvaluator
from detectron2.data import DatasetCatalog, MetadataCatalog
cfg = get_cfg()
cfg.MODEL.DEVICE = "cpu"
cfg.MODEL.META_ARCHITECTURE = "SemanticSegmentor"
cfg.MODEL.BACKBONE.FREEZE_AT = 0
cfg.MODEL.RESNETS.DEPTH = 18
cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
cfg.MODEL.RESNETS.OUT_FEATURES = ["res4"]
cfg.MODEL.SEM_SEG_HEAD.NAME = "SemSegFPNHead"
cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["res4"]
cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 3
model = build_model(cfg)
x = [{"image": torch.rand(3, 64, 64) * 255, "sem_seg": torch.randint(0, 3, (64, 64))}]
loss = sum(model(x).values())
loss.backward()
model.eval()
with torch.no_grad():
    out = model([{"image": x[0]["image"], "height": 64, "width": 64}])
assert out[0]["sem_seg"].shape == (3, 64, 64), out[0]["sem_seg"].shape
# SemSegEvaluator reads the ground truth from a PNG: one tiny image, checked end to end.
from PIL import Image
d = tempfile.mkdtemp()
gt = np.random.RandomState(0).randint(0, 3, (64, 64)).astype(np.uint8)
Image.fromarray(gt).save(os.path.join(d, "gt.png"))
DatasetCatalog.register("_d2_verify", lambda: [{"file_name": "x.jpg", "sem_seg_file_name": os.path.join(d, "gt.png")}])
MetadataCatalog.get("_d2_verify").set(stuff_classes=["a", "b", "c"], ignore_label=255)
ev = SemSegEvaluator("_d2_verify", distributed=False, output_dir=None)
ev.reset()
ev.process([{"file_name": "x.jpg"}], [{"sem_seg": torch.nn.functional.one_hot(torch.from_numpy(gt).long(), 3).permute(2, 0, 1).float()}])
res = ev.evaluate()["sem_seg"]
assert abs(res["mIoU"] - 100.0) < 1e-6 and abs(res["pACC"] - 100.0) < 1e-6, res
print("detectron2", detectron2.__version__, "verified (sem-seg train/eval/SemSegEvaluator) at", os.path.dirname(detectron2.__file__))
PY
}

# Fast check (no torch import): a detectron2 distribution (ours or upstream) and cloudpickle present.
installed() {
    "$PYTHON" - >/dev/null 2>&1 <<'PY'
import importlib.metadata as md, importlib.util as u, sys
ok = False
for dist in ("pb1-detectron2", "detectron2"):
    try:
        md.version(dist)
        ok = True
    except md.PackageNotFoundError:
        pass
sys.exit(0 if ok and u.find_spec("detectron2") and u.find_spec("cloudpickle") else 1)
PY
}

if [ -z "${D2_FORCE:-}" ] && installed; then
    if [ -n "${D2_VERIFY:-}" ]; then verify; else echo "detectron2 already installed (D2_VERIFY=1 runs the check, D2_FORCE=1 rebuilds)"; fi
    exit 0
fi

"$PYTHON" -m pip install -r "$REPO/requirements-detectron2.txt"

if [ -n "${D2_SOURCE:-}" ]; then
    # Upstream checkout: detectron2's own install instructions (compiles detectron2._C).
    "$PYTHON" -m pip install --no-build-isolation -e "$D2_SOURCE"
    verify
    exit 0
fi

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
# --no-build-isolation: the sdist's setup.py imports torch even to write metadata.
"$PYTHON" -m pip download --no-deps --no-binary :all: --no-build-isolation -d "$WORK" "$D2_SDIST"
echo "$D2_SDIST_SHA256  $WORK/$D2_SDIST_FILE" | sha256sum -c -
tar -xzf "$WORK/$D2_SDIST_FILE" -C "$WORK"
SRC="$WORK/pb1-detectron2-0.6"
# Leave the C++ extension out (its sources are not in the sdist).
grep -q "ext_modules=get_extensions()," "$SRC/setup.py"
sed -i 's/ext_modules=get_extensions(),/ext_modules=[],  # vissl_ext: no C++ sources in this sdist/' "$SRC/setup.py"
# detectron2.layers imports detectron2._C at module level (deform_conv, rotated boxes): a pure
# Python stand-in that raises a clear error when a compiled op is called (see the file).
cp "$REPO/vissl_ext/segmentation/d2_stub_C.py" "$SRC/detectron2/_C.py"
"$PYTHON" -m pip install --no-deps --no-build-isolation --force-reinstall "$SRC"
verify
