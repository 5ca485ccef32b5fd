"""TwoLayerUpsampleHead: registered in detectron2, two layers, upsampled and cropped, CE with ignore."""
import importlib.util
import pytest
import torch
import torch.nn.functional as F

if importlib.util.find_spec("detectron2") is None:  # `make test` installs it: a missing one fails, never skips
    raise ImportError("detectron2 is not installed: run `bash scripts/install_detectron2.sh`")

import vissl_ext.segmentation.head  # noqa: E402,F401
from detectron2.config import get_cfg  # noqa: E402
from detectron2.layers import ShapeSpec  # noqa: E402
from detectron2.modeling import SEM_SEG_HEADS_REGISTRY, build_sem_seg_head  # noqa: E402
from vissl_ext.segmentation.head import add_segmentation_config  # noqa: E402


def _head(num_classes=5, loss_stride=4):
    cfg = add_segmentation_config(get_cfg())
    cfg.MODEL.SEM_SEG_HEAD.LOSS_STRIDE = loss_stride
    cfg.MODEL.SEM_SEG_HEAD.NAME = "TwoLayerUpsampleHead"
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["res5"]
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = num_classes
    cfg.MODEL.SEM_SEG_HEAD.CONVS_DIM = 8
    cfg.MODEL.SEM_SEG_HEAD.NORM = ""  # detectron2 default is GN
    cfg.MODEL.SEM_SEG_HEAD.IGNORE_VALUE = 255
    return build_sem_seg_head(cfg, {"res5": ShapeSpec(channels=16, stride=32)})


def test_registered_two_layers_upsampled_by_stride():
    assert "TwoLayerUpsampleHead" in SEM_SEG_HEADS_REGISTRY
    head = _head().eval()
    convs = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3), (1, 1)]
    feats = {"res5": torch.randn(2, 16, 3, 4)}
    out, losses = head(feats)
    assert out.shape == (2, 5, 96, 128) and losses == {}
    with torch.no_grad():
        hidden = F.relu(F.conv2d(feats["res5"], head.conv.weight, head.conv.bias, padding=1))
        scores = F.conv2d(hidden, head.predictor.weight, head.predictor.bias)
        expected = F.interpolate(scores, scale_factor=32, mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, expected)


def _expected_loss(head, feats, target, stride):
    """Cross-entropy of the full-resolution upsampled logits on every stride-th pixel (offset
    stride // 2), ignoring 255, written out by hand."""
    logits = F.interpolate(head.layers(feats), scale_factor=32, mode="bilinear", align_corners=False)
    h, w = target.shape[-2:]
    logits = logits[..., :h, :w][..., stride // 2::stride, stride // 2::stride]
    target = target[..., stride // 2::stride, stride // 2::stride]
    valid = target != 255
    logp = F.log_softmax(logits, dim=1).permute(0, 2, 3, 1)[valid]
    return -logp.gather(1, target[valid][:, None]).mean()


@pytest.mark.parametrize("stride", [1, 4, 3])
def test_loss_is_cross_entropy_on_the_cropped_full_resolution_map_ignoring_255(stride):
    torch.manual_seed(stride)
    head = _head(loss_stride=stride).train()
    with torch.no_grad():
        head.predictor.weight.normal_()  # larger logits than the init's: a sampling error would show
    feats = {"res5": torch.randn(2, 16, 3, 4)}
    # 90x100 image: ceil(90/32)=3, ceil(100/32)=4 feature cells -> upsampled 96x128, cropped to 90x100
    target = torch.randint(0, 5, (2, 90, 100))
    target[:, :10] = 255
    _, losses = head(feats, target)
    torch.testing.assert_close(losses["loss_sem_seg"], _expected_loss(head, feats, target, stride))
    losses["loss_sem_seg"].backward()
    assert head.conv.weight.grad is not None and head.predictor.weight.grad.abs().sum() > 0


def test_one_feature_only():
    cfg = add_segmentation_config(get_cfg())
    cfg.MODEL.SEM_SEG_HEAD.NAME = "TwoLayerUpsampleHead"
    cfg.MODEL.SEM_SEG_HEAD.IN_FEATURES = ["res4", "res5"]
    with pytest.raises(ValueError, match="exactly one feature"):
        build_sem_seg_head(cfg, {"res4": ShapeSpec(channels=8, stride=16), "res5": ShapeSpec(channels=8, stride=32)})
