"""tools/export_trunk.py: a VISSL checkpoint (as VISSL writes it: trunk, heads, the momentum
encoder in the loss state) exported to torchvision, timm and safetensors loads with strict=True
(classifier aside) into the libraries' own ResNet-50 and gives the VISSL trunk's pooled features."""
import hashlib
import json
import os

import pytest
import timm
import torch
import torchvision
from safetensors import safe_open
from safetensors.torch import load_file

from vissl_ext_testing import run_tool


def _vissl_trunk(seed):
    from vissl_ext.tracking.trunk import build_trunk, compose_model_config

    torch.manual_seed(seed)
    t = build_trunk(compose_model_config())
    with torch.no_grad():  # away from init (zero-init residual BNs, unit BN statistics)
        for name, b in list(t.named_parameters()) + list(t.named_buffers()):
            if b.dtype.is_floating_point:
                b.copy_(b + 0.05 * torch.randn_like(b)) if "conv" in name else b.uniform_(0.5, 1.5)
    return t.eval()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A checkpoint in the layout VISSL's checkpoint hook writes, online and momentum trunks differing."""
    d = tmp_path_factory.mktemp("ck")
    online, momentum = _vissl_trunk(1), _vissl_trunk(2)
    loss = {"queue": torch.randn(128, 16), "queue_ptr": torch.zeros(1, dtype=torch.long),
            **{f"moco_encoder.trunk.{k}": v for k, v in momentum.state_dict().items()},
            "moco_encoder.heads.0.clf.0.weight": torch.randn(128, 2048)}
    path = d / "model_final_checkpoint_phase0.torch"
    torch.save({"phase_idx": 0, "iteration": 6, "type": "consolidated", "loss": loss, "classy_state_dict": {
        "base_model": {"model": {"trunk": online.state_dict(), "heads": {"0.clf.0.weight": torch.randn(128, 2048)}}},
        "loss": loss, "optimizer": {"state": {}}}}, path)
    (d / "run_info.json").write_text(json.dumps({"config": "pretrain/region_tracker"}))
    return str(path), online, momentum


X = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(5))


def _want(trunk):
    with torch.no_grad():
        return trunk(X, out_feat_keys=["res5avg"])[0].flatten(1)


def _export(ckpt_path, fmt, out, capsys, *extra):
    capsys.readouterr()
    code, text = run_tool("export_trunk", [ckpt_path, "--format", fmt, "--out", out, *extra], capsys)
    assert code == 0, text[-3000:]
    return json.JSONDecoder().raw_decode(text[text.index("\n{") + 1:] if not text.startswith("{") else text)[0]


def _features(model):
    with torch.no_grad():
        return model.eval()(X).flatten(1)


def test_torchvision_export_loads_strictly_with_equal_features(ckpt, tmp_path, capsys):
    path, online, _ = ckpt
    out = str(tmp_path / "r50.pth")
    summary = _export(path, "torchvision", out, capsys)
    assert summary["arch"] == "resnet50" and summary["max_abs_diff"] <= 1e-5
    state = torch.load(out, weights_only=True)
    m = torchvision.models.resnet50()
    missing, unexpected = m.load_state_dict(state, strict=False)
    assert missing == ["fc.weight", "fc.bias"] and unexpected == []
    m.fc = torch.nn.Identity()
    m.load_state_dict(state, strict=True)
    assert (_features(m) - _want(online)).abs().max().item() <= 1e-5
    assert sorted(os.listdir(tmp_path)) == ["r50.pth"]  # the file alone, no temporary left


def test_timm_export_loads_through_timms_own_checkpoint_path(ckpt, tmp_path, capsys):
    path, online, _ = ckpt
    out = str(tmp_path / "r50_timm.pth")
    _export(path, "timm", out, capsys)
    m = timm.create_model("resnet50", pretrained=False, num_classes=0, checkpoint_path=out)  # strict load in timm
    assert (_features(m) - _want(online)).abs().max().item() <= 1e-5
    full = timm.create_model("resnet50", pretrained=False)
    missing, unexpected = full.load_state_dict(torch.load(out, weights_only=True), strict=False)
    assert missing == ["fc.weight", "fc.bias"] and unexpected == []


def test_safetensors_holds_tensors_and_metadata_momentum_encoder(ckpt, tmp_path, capsys):
    path, online, momentum = ckpt
    out = str(tmp_path / "r50_key.safetensors")
    _export(path, "safetensors", out, capsys, "--encoder", "momentum")
    with safe_open(out, framework="pt") as f:
        meta = f.metadata()
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    assert meta["source_sha256"] == sha and meta["config"] == "pretrain/region_tracker" and meta["iteration"] == "6"
    assert meta["encoder"] == "momentum" and meta["arch"] == "resnet50"
    m = torchvision.models.resnet50()
    m.fc = torch.nn.Identity()
    m.load_state_dict(load_file(out), strict=True)
    got = _features(m)
    assert (got - _want(momentum)).abs().max().item() <= 1e-5
    assert (got - _want(online)).abs().max().item() > 1e-2  # the momentum encoder, not the online one


def test_export_refuses_bad_outputs(ckpt, tmp_path, capsys):
    path, _, _ = ckpt
    (tmp_path / "folder.pth").mkdir()
    cases = [(["--format", "safetensors", "--out", str(tmp_path / "x.pth")], "a safetensors export is a .safetensors file"),
             (["--format", "torchvision", "--out", str(tmp_path / "folder.pth")], "is a folder"),
             (["--format", "torchvision", "--out", path.replace(".torch", ".pth")], None)]
    for argv, what in cases[:2]:
        before = set(os.listdir(tmp_path))
        code, out = run_tool("export_trunk", [path, *argv], capsys)
        errors = [line for line in out.splitlines() if line.startswith("error:")]
        assert code == 2 and len(errors) == 1 and what in errors[0], out[-2000:]
        assert set(os.listdir(tmp_path)) == before
    same = str(tmp_path / "same.pth")
    torch.save(torch.load(path, weights_only=True), same)
    code, out = run_tool("export_trunk", [same, "--format", "torchvision", "--out", same], capsys)
    assert code == 2 and "is the checkpoint itself" in out
    code, out = run_tool("export_trunk", [str(tmp_path / "nope.torch"), "--format", "timm", "--out", str(tmp_path / "n.pth")], capsys)
    assert code == 2 and "nope.torch: no such checkpoint file" in out


def test_help_names_the_dropped_heads(capsys):
    code, out = run_tool("export_trunk", ["--help"], capsys)
    text = " ".join(out.split())
    assert code == 0 and "Dropped: every head of the model" in text and "region head" in text and "--encoder" in text


@pytest.mark.slow
def test_a_trained_checkpoint_exports_to_every_format(frame_temporal_two_iterations, tmp_path, capsys):
    """A real 2-iteration run (VISSL's launcher, CPU; shared with tests/test_training_runs.py, see
    tests/conftest.py): each format, and the momentum encoder, gives the features of the trunk
    built from the training config with the checkpoint's own weights."""
    from vissl_ext.tracking.trunk import build_trunk, compose_model_config

    run_dir, _, rc, out = frame_temporal_two_iterations
    assert rc == 0, out[-3000:]
    path = str(run_dir / "ck" / "model_final_checkpoint_phase0.torch")
    ck = torch.load(path, weights_only=True)
    cfg = compose_model_config("pretrain/tiny/frame_temporal_cpu")

    def trained(sd):
        t = build_trunk(cfg)
        t.load_state_dict(sd, strict=True)
        return _want(t.eval())

    online = trained(ck["classy_state_dict"]["base_model"]["model"]["trunk"])
    momentum = trained({k[len("moco_encoder.trunk."):]: v for k, v in ck["classy_state_dict"]["loss"].items()
                        if k.startswith("moco_encoder.trunk.")})
    tv = torchvision.models.resnet50()
    tv.fc = torch.nn.Identity()
    for fmt, ext, extra, want in (("torchvision", "pth", [], online), ("timm", "pth", [], online),
                                  ("safetensors", "safetensors", [], online),
                                  ("safetensors", "safetensors", ["--encoder", "momentum"], momentum)):
        out_file = str(tmp_path / f"{fmt}{len(extra)}.{ext}")
        summary = _export(path, fmt, out_file, capsys, *extra)
        assert summary["metadata"]["config"] == "pretrain/tiny/frame_temporal_cpu" and summary["metadata"]["iteration"] == "2"
        if fmt == "timm":
            m = timm.create_model("resnet50", pretrained=False, num_classes=0, checkpoint_path=out_file)
        else:
            tv.load_state_dict(load_file(out_file) if ext == "safetensors" else torch.load(out_file, weights_only=True))
            m = tv
        assert (_features(m) - want).abs().max().item() <= 1e-5, (fmt, extra)
    assert (online - momentum).abs().max().item() > 1e-3
