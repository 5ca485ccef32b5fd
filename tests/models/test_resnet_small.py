"""resnet_small: with torchvision's stem and width it is torchvision's ResNet-18 (same weights give
the same features); the small-image stem keeps a 4x4 res5 map at 32 px; the width and depth
options reach the modules; depth 50 is refused with the key named."""
import pytest
import torch
import torchvision

from vissl_ext.tracking.trunk import build_trunk, compose_model_config
from vissl_ext.utils.checkpoint_layouts import trunk_from_object


def _trunk(*overrides, config="pretrain/mini/moco_video_baseline"):
    return build_trunk(compose_model_config(config, list(overrides))).eval()


def test_imagenet_stem_width_64_is_torchvision_resnet18():
    torch.manual_seed(0)
    tv = torchvision.models.resnet18().eval()
    ours = _trunk("config.MODEL.TRUNK.RESNETS.BASE_WIDTH=64", "config.MODEL.TRUNK.RESNETS.SMALL_STEM=False")
    state = {k: v for k, v in tv.state_dict().items() if not k.startswith("fc.")}
    missing, unexpected = ours.load_state_dict(trunk_from_object(state).vissl_state(), strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ref = torch.flatten(tv.avgpool(tv.layer4(tv.layer3(tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))))))), 1)
        got = ours(x, ["res5avg"])[0].flatten(1)
    assert torch.allclose(got, ref, atol=1e-5)


def test_small_stem_and_width():
    t = _trunk()  # the mini study's trunk: small stem, width 16
    with torch.no_grad():
        res2, res5 = t(torch.randn(2, 3, 32, 32), ["res2", "res5"])  # VISSL returns them in block order
    assert res5.shape == (2, 128, 4, 4) and res2.shape == (2, 16, 32, 32)
    t34 = _trunk("config.MODEL.TRUNK.RESNETS.DEPTH=34")
    assert len(t34._feature_blocks["layer3"]) == 6


def test_region_variant_returns_pooled_and_map():
    t = _trunk("config.MODEL.TRUNK.NAME=resnet_small_regions", "+config.MODEL.TRUNK.REGION_FEATURE=res4")
    flat, fmap = t(torch.randn(2, 3, 32, 32))
    assert flat.shape == (2, 128) and fmap.shape == (2, 64, 8, 8)


def test_depth_50_refused():
    with pytest.raises(ValueError, match="RESNETS.DEPTH=50"):
        _trunk("config.MODEL.TRUNK.RESNETS.DEPTH=50")
