import pytest
import torch
import torchvision

from vissl_ext.tracking.trunk import build_trunk, compose_model_config, load_tracker_trunk, load_trunk_weights
from vissl_ext.utils.checkpoint_layouts import TrunkMismatchError, trunk_from_object


@pytest.fixture(scope="module")
def model_cfg():
    return compose_model_config()


@pytest.fixture(scope="module")
def source_trunk(model_cfg):
    torch.manual_seed(1)
    t = build_trunk(model_cfg)
    with torch.no_grad():  # zero-init residual BNs would make layer3 weights trivially equal
        for p in t.parameters():
            p.normal_()
    return t


def _layer3(t):
    return t.state_dict()["_feature_blocks.layer3.5.conv3.weight"]


def test_vissl_checkpoint_and_whole_model_dicts_load(tmp_path, model_cfg, source_trunk):
    sd = source_trunk.state_dict()
    ckpt = {"phase_idx": 0, "classy_state_dict": {"base_model": {"model": {"trunk": sd, "heads": {"0.weight": torch.zeros(1)}}}}}
    path = tmp_path / "model_final_checkpoint_phase0.torch"
    torch.save(ckpt, path)
    t = load_tracker_trunk(str(path))
    assert torch.equal(_layer3(t), _layer3(source_trunk)) and not t.training
    whole = {f"module.trunk.{k}": v for k, v in sd.items()}
    whole["module.heads.0.clf.weight"] = torch.zeros(3)
    t2 = build_trunk(model_cfg)
    load_trunk_weights(t2, trunk_from_object(whole))
    assert torch.equal(_layer3(t2), _layer3(source_trunk))


def test_torchvision_state_dict_loads(tmp_path, model_cfg):
    tv = torchvision.models.resnet50(weights=None)
    torch.save(tv.state_dict(), tmp_path / "tv.pth")
    t = load_tracker_trunk(str(tmp_path / "tv.pth"))
    assert torch.equal(t.state_dict()["_feature_blocks.layer2.1.conv2.weight"], tv.layer2[1].conv2.weight)
    assert torch.equal(t.state_dict()["_feature_blocks.bn1.running_var"], tv.bn1.running_var)


def test_misfit_trunks_name_the_first_key(tmp_path, model_cfg):
    t = build_trunk(model_cfg)
    wide = trunk_from_object(torchvision.models.wide_resnet50_2(weights=None).state_dict(), source="wide.pth")
    with pytest.raises(TrunkMismatchError, match=r"wide\.pth: .*first mismatch: _feature_blocks\.layer1\.0\.conv1\.weight "
                                                 r"has shape \(128, 64, 1, 1\) in the file, \(64, 64, 1, 1\) in the trunk"):
        load_trunk_weights(t, wide)
    deep = trunk_from_object(torchvision.models.resnet101(weights=None).state_dict())
    with pytest.raises(TrunkMismatchError, match=r"first mismatch: _feature_blocks\.layer3\.6\.conv1\.weight is in the file but not"):
        load_trunk_weights(t, deep)
    partial = {k: v for k, v in t.state_dict().items() if not k.startswith("_feature_blocks.layer2.")}
    with pytest.raises(TrunkMismatchError, match=r"first mismatch: _feature_blocks\.layer2\.0\.conv1\.weight missing from the file"):
        load_trunk_weights(t, trunk_from_object(partial))
    # blocks past res4 are not needed: a checkpoint without layer4 still loads
    no_l4 = {k: v for k, v in t.state_dict().items() if "layer4" not in k}
    load_trunk_weights(build_trunk(model_cfg), trunk_from_object(no_l4))
    torch.save({"not": "weights"}, tmp_path / "junk.torch")
    with pytest.raises(TrunkMismatchError, match="junk.torch: no ResNet trunk found"):
        load_tracker_trunk(str(tmp_path / "junk.torch"))
