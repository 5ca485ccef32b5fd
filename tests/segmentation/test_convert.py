"""VISSL trunk -> detectron2 ResNet conversion: same features on the same input, both load paths."""
import importlib.util
import os
import subprocess
import sys

import pytest
import torch
from vissl_ext_testing import REPO, compose

if importlib.util.find_spec("detectron2") is None:  # `make test` installs it: a missing one fails, never skips
    raise ImportError("detectron2 is not installed: run `bash scripts/install_detectron2.sh`")

import vissl_ext.segmentation  # noqa: E402,F401  (d2 compat fixes before detectron2 imports)
from vissl_ext.utils.safe_load import load_pickle  # noqa: E402
from vissl_ext.segmentation.convert import ConversionError, convert_checkpoint, convert_trunk_state  # noqa: E402


def _vissl_trunk(seed=0):
    from vissl.models import build_model

    torch.manual_seed(seed)
    cfg = compose("config=pretrain/tiny/frame_temporal_cpu")
    trunk = build_model(cfg.MODEL, cfg.OPTIMIZER).trunk
    # Random BN statistics and affine terms: the default (0, 1, 1, 0) would hide a BN/FrozenBN mix-up.
    g = torch.Generator().manual_seed(seed)
    for m in trunk.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=g) * 0.1)
    return trunk.eval()


def _d2_backbone():
    from detectron2.config import get_cfg
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.backbone.resnet import build_resnet_backbone

    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(REPO, "configs", "detectron2", "Base-VISSL-R50.yaml"))
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    return build_resnet_backbone(cfg, ShapeSpec(channels=3)).eval()


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    d = tmp_path_factory.mktemp("conv")
    trunk = _vissl_trunk()
    ckpt = d / "model_final_checkpoint_phase0.torch"
    # the layout of a VISSL training checkpoint
    torch.save({"classy_state_dict": {"base_model": {"model": {"trunk": trunk.state_dict(), "heads": {}}}}}, ckpt)
    return trunk, ckpt, d


def _features(trunk, backbone, x):
    with torch.no_grad():
        ref = dict(zip(["res2", "res3", "res4", "res5"], trunk(x, out_feat_keys=["res2", "res3", "res4", "res5"])))
        got = backbone(x)
    return ref, got


@pytest.mark.parametrize("ext", ["pkl", "pth"])
def test_detection_checkpointer_loads_converted_trunk_and_features_match(converted, ext):
    from detectron2.checkpoint import DetectionCheckpointer

    trunk, ckpt, d = converted
    out = d / f"trunk_d2.{ext}"
    state = convert_checkpoint(str(ckpt), str(out))
    assert len(state) == sum(1 for k in trunk.state_dict() if not k.endswith("num_batches_tracked"))
    backbone = _d2_backbone()
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    DetectionCheckpointer(backbone).load(str(out))
    changed = sum(not torch.equal(before[k], v) for k, v in backbone.state_dict().items())
    assert changed == len(before), f"only {changed}/{len(before)} backbone tensors were loaded"
    x = torch.randn(2, 3, 96, 128)
    ref, got = _features(trunk, backbone, x)
    for k in ref:
        assert got[k].shape == ref[k].shape, k
        torch.testing.assert_close(got[k], ref[k], rtol=1e-4, atol=1e-4)


def test_exact_names_load_strict_into_resnet_and_a_different_trunk_differs(converted):
    trunk, ckpt, _ = converted
    backbone = _d2_backbone()
    backbone.load_state_dict(convert_trunk_state(trunk.state_dict()), strict=True)
    x = torch.randn(1, 3, 64, 64)
    ref, got = _features(trunk, backbone, x)
    torch.testing.assert_close(got["res5"], ref["res5"], rtol=1e-4, atol=1e-4)
    # a trunk with other weights gives other features: the comparison above can fail
    other = _vissl_trunk(seed=1)
    ref_other, _ = _features(other, backbone, x)
    assert not torch.allclose(ref_other["res5"], got["res5"], atol=1e-3)


@pytest.mark.slow
def test_cli_writes_model_zoo_pkl_and_rejects_non_resnet(converted, tmp_path):
    _, ckpt, _ = converted
    out = tmp_path / "w.pkl"
    tool = os.path.join(REPO, "tools", "convert_vissl_to_detectron2.py")
    p = subprocess.run([sys.executable, tool, str(ckpt), "-o", str(out), "--prefix", "backbone."],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    data = load_pickle(str(out))  # the restricted unpickler reads what we write
    assert data["__author__"] == "vissl_ext" and data["matching_heuristics"] is False
    assert "backbone.res4.5.conv3.norm.running_var" in data["model"]
    assert "backbone.stem.conv1.norm.weight" in data["model"] and "backbone.res2.0.shortcut.weight" in data["model"]
    bad = tmp_path / "bad.pth"
    torch.save({"trunk": {"_feature_blocks.mlp.weight": torch.zeros(2)}}, bad)
    p = subprocess.run([sys.executable, tool, str(bad), "-o", str(tmp_path / "x.pkl")], capture_output=True, text=True)
    assert p.returncode == 2 and "no ResNet trunk found" in p.stderr, p.stderr
    with pytest.raises(ConversionError, match="not VISSL ResNet trunk keys"):
        convert_trunk_state({"heads.0.weight": torch.zeros(1)})
