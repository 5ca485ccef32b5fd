"""The study runner's torchvision model kind takes a checkpoint in any public layout (here MoCo's
official one) and writes the VISSL checkpoint the evaluations start from, with exactly those
trunk weights."""
import pytest
import torch
import torchvision

from vissl_ext.study.cells import prepare_model
from vissl_ext.study.spec import Model


def test_moco_official_layout_becomes_the_vissl_checkpoint(tmp_path, capsys):
    torch.manual_seed(4)
    net = torchvision.models.resnet50(weights=None)
    sd = {f"module.encoder_q.{k}": v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    sd["module.encoder_q.fc.0.weight"] = torch.zeros(2048, 2048)
    sd["module.queue"] = torch.zeros(128, 8)
    torch.save({"epoch": 200, "arch": "resnet50", "state_dict": sd}, tmp_path / "moco_v2_200ep_pretrain.pth.tar")
    m = Model(name="MoCo v2", kind="torchvision", weights=str(tmp_path / "moco_v2_200ep_pretrain.pth.tar"))
    path = prepare_model(m, str(tmp_path / "study"))
    assert "layout MoCo v1/v2 official (state_dict: module.encoder_q.)" in capsys.readouterr().err
    trunk = torch.load(path, weights_only=True)["classy_state_dict"]["base_model"]["model"]["trunk"]
    for k, v in net.state_dict().items():
        if not k.startswith("fc."):
            assert torch.equal(trunk[f"_feature_blocks.{k}"], v), k


def test_a_resnet18_file_for_a_resnet50_model_is_refused_by_key(tmp_path):
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "r18.pth")
    m = Model(name="small", kind="torchvision", weights=str(tmp_path / "r18.pth"))
    with pytest.raises(ValueError, match=r"model 'small': .*r18\.pth: .*first mismatch: _feature_blocks\.layer1\.0\.conv1\.weight"):
        prepare_model(m, str(tmp_path / "study"))
