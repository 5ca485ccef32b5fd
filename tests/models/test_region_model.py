"""The resnet_regions trunk + heads + hook + loss as one model: gradients, resume, config checks."""
import copy
from types import SimpleNamespace

import pytest
import torch

from vissl_ext_testing import compose
from vissl_ext.config import ConfigError
from vissl_ext.hooks.temporal_contrastive_hook import TemporalContrastiveHook


def build(cfg):
    from classy_vision.losses import build_loss
    from vissl.models import build_model

    model = build_model(cfg.MODEL, cfg.OPTIMIZER)
    lc = dict(cfg.LOSS.temporal_contrastive_loss)
    lc["name"] = "temporal_contrastive_loss"
    return model, build_loss(lc)


def batch(seed, n=2, size=64):
    g = torch.Generator().manual_seed(seed)
    rois = torch.tensor([[0, 4, 4, 36, 36], [1, 16, 8, 60, 40]], dtype=torch.float32)
    return {"input": torch.randn(n, 3, size, size, generator=g),
            "data_momentum": [torch.randn(n, 3, size, size, generator=g)],
            "region_boxes": [rois], "region_boxes_momentum": [rois + torch.tensor([0, 2, 2, 2, 2.0])]}


def step(task, hook, opt, sample, it):
    task.iteration = it
    task.last_batch = SimpleNamespace(sample=sample)
    out = task.base_model(sample["input"])
    hook.on_forward(task)
    loss = task.loss(out)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


@pytest.fixture(scope="module")
def cfg():
    return compose("config=pretrain/tiny/region_tracker_cpu", "config.MODEL.TRUNK.RESNETS.DEPTH=50")


def test_model_outputs_frame_embedding_and_region_map(cfg):
    model, _ = build(cfg)
    out = model(torch.randn(2, 3, 64, 64))
    assert out[0].shape == (2, 128) and out[1].shape == (2, 128, 4, 4)


def test_region_gradients_reach_the_trunk_through_roialign(cfg):
    torch.manual_seed(0)
    model, loss = build(cfg)
    loss.loss_config["frame_weight"] = 0.0  # the region term alone
    task = SimpleNamespace(loss=loss, base_model=model, config=cfg, device=torch.device("cpu"), iteration=0)
    hook = TemporalContrastiveHook(0.999, shuffle_batch=False)
    task.last_batch = SimpleNamespace(sample=batch(0))
    out = model(task.last_batch.sample["input"])
    hook.on_forward(task)
    loss(out).backward()
    blocks = model.trunk._feature_blocks
    assert blocks.layer3[0].conv1.weight.grad.abs().sum() > 0  # below the region map: reached
    assert blocks.conv1.weight.grad.abs().sum() > 0
    g4 = blocks.layer4[0].conv1.weight.grad  # above it, only the frame term (weight 0) could push
    assert g4 is None or float(g4.abs().sum()) == 0.0
    assert all(p.grad is None for p in loss.moco_encoder.parameters())


def test_resume_gives_the_same_next_step_loss(cfg):
    def fresh():
        torch.manual_seed(0)
        model, loss = build(cfg)
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        task = SimpleNamespace(loss=loss, base_model=model, config=cfg, device=torch.device("cpu"), iteration=0)
        return task, TemporalContrastiveHook(0.99, shuffle_batch=False), opt

    task, hook, opt = fresh()
    losses, saved = [], None
    for it in range(3):
        losses.append(step(task, hook, opt, batch(it), it))
        if it == 1:
            saved = copy.deepcopy((task.base_model.state_dict(), task.loss.state_dict(), opt.state_dict()))

    task2, hook2, opt2 = fresh()
    task2.base_model.load_state_dict(saved[0])
    task2.loss.load_state_dict(saved[1])  # kept until the hook builds the encoder, as on a VISSL resume
    opt2.load_state_dict(saved[2])
    resumed = step(task2, hook2, opt2, batch(2), 2)
    assert resumed == pytest.approx(losses[2], rel=1e-5, abs=1e-6)
    assert torch.equal(task2.loss.queue, task.loss.queue) and torch.equal(task2.loss.region_queue, task.loss.region_queue)
    for a, b in zip(task.loss.moco_encoder.parameters(), task2.loss.moco_encoder.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("override,match", [
    ("config.MODEL.TRUNK.NAME=resnet", "resnet_regions"),
    ("config.LOSS.temporal_contrastive_loss.region_temperature=0", "region_temperature"),
    ("config.LOSS.temporal_contrastive_loss.region_embedding_dim=64", "output dims"),
    ("config.DATA.TRAIN.COLLATE_FUNCTION=moco_collator", "region_moco_collator"),
    ("config.MODEL.TRUNK.REGION_FEATURE=res3", "512 channels"),
    ("config.DATA.TRAIN.VIDEO.MAX_REGION_PAIRS=0", "MAX_REGION_PAIRS"),
    ("config.DATA.TRAIN.VIDEO.REGION_CANDIDATES=4", r"REGION_CANDIDATES must be 0 \(auto\) or >= MAX_REGION_PAIRS=8"),
    ("config.DATA.TRAIN.VIDEO.REGION_CANDIDATES=-1", "REGION_CANDIDATES"),
    ("config.DATA.TRAIN.TRANSFORMS.1.tries=0", r"TRANSFORMS\[1\] \(BoxRandomResizedCrop\)\.tries must be an integer >= 1"),
    ("config.DATA.TRAIN.TRANSFORMS.1.min_visible=1.5", r"BoxRandomResizedCrop\)\.min_visible must be a number in \[0, 1\]"),
])
def test_wrong_config_values_fail_at_compose_time(override, match):
    with pytest.raises(ConfigError, match=match):
        compose("config=pretrain/tiny/region_tracker_cpu", override)
