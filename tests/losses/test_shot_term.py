"""The shot-level term of temporal_contrastive_loss (pretrain/shot_temporal) against a
straightforward computation, its own queue, and the batch it trains on: the shot keys' views
come from another shot of the same video (joined real clips, cuts detected)."""
import numpy as np
import pytest
import torch
from torchvision.transforms import functional as TF

from vissl_ext_testing import compose
from vissl_ext.config import ConfigError
from vissl_ext.video.manifest import load_manifest
from vissl_ext.video.video_io import read_image
from vissl_ext.losses.temporal_contrastive_loss import TemporalContrastiveLoss

from importlib import util as _util
import os as _os

_spec = _util.spec_from_file_location("tcl_tests", _os.path.join(_os.path.dirname(__file__), "test_temporal_contrastive_loss.py"))
_tcl = _util.module_from_spec(_spec)
_spec.loader.exec_module(_tcl)
nce_by_hand, unit = _tcl.nce_by_hand, _tcl.unit


def shot_loss(**kw):
    cfg = dict(embedding_dim=4, queue_size=6, region_queue_size=5, temperature=0.2, frame_weight=1.0,
               region_weight=0.0, shot_weight=0.5, shot_queue_size=7, shot_temperature=0.1)
    cfg.update(kw)
    return TemporalContrastiveLoss(cfg)


def test_frame_plus_shot_term_equals_straightforward_computation():
    torch.manual_seed(0)
    loss = shot_loss()
    frame_q = torch.randn(3, 4)  # a frame-only model's single output
    loss.key, loss.shot_key = unit(torch.randn(3, 4)), unit(torch.randn(3, 4))
    queue0, squeue0 = loss.queue.clone(), loss.shot_queue.clone()
    assert not torch.equal(queue0[:, :6], squeue0[:, :6])  # two queues, not one
    got = loss(frame_q)
    q = unit(frame_q)
    want = nce_by_hand(q, loss.key, queue0, 0.2) + 0.5 * nce_by_hand(q, loss.shot_key, squeue0, 0.1)
    assert got.item() == pytest.approx(want, rel=1e-5)
    assert float(loss.last_terms["shot"]) == pytest.approx(nce_by_hand(q, loss.shot_key, squeue0, 0.1), rel=1e-5)
    # each queue receives the keys of its own term
    assert int(loss.queue_ptr) == 3 and int(loss.shot_queue_ptr) == 3
    assert torch.allclose(loss.queue[:, :3].T, loss.key) and torch.allclose(loss.shot_queue[:, :3].T, loss.shot_key)
    # the shot term pulls the query toward its shot key: gradients flow
    frame_q.requires_grad_(True)
    loss.shot_key = unit(torch.randn(3, 4))
    loss(frame_q).backward()
    assert frame_q.grad.abs().sum() > 0


def test_shot_queue_exists_only_when_the_term_is_on():
    # checkpoints of the region configs keep their keys (resume of older runs)
    off = TemporalContrastiveLoss(dict(shot_weight=0.0, queue_size=4, region_queue_size=4))
    assert not any(k.startswith("shot_queue") for k in off.state_dict())
    assert {"shot_queue", "shot_queue_ptr"} <= set(shot_loss().state_dict())


def test_missing_shot_keys_is_a_clear_error():
    loss = shot_loss()
    loss.key = unit(torch.randn(2, 4))
    with pytest.raises(RuntimeError, match="shot_moco_collator"):
        loss(torch.randn(2, 4))


@pytest.mark.parametrize("extra, match", [
    (["config.DATA.TRAIN.COLLATE_FUNCTION=moco_collator"], "needs config.DATA.TRAIN.COLLATE_FUNCTION=shot_moco_collator"),
    (["config.LOSS.temporal_contrastive_loss.shot_weight=0.0"], "shot_weight is 0.0"),
    (["config.LOSS.temporal_contrastive_loss.region_weight=1.0"], "region_weight must be 0"),
    (["config.DATA.TRAIN.DATA_SOURCES=[video_frame_pairs]"], "video_shot_triplets"),
    (["config.LOSS.temporal_contrastive_loss.shot_temperature=0"], "shot_temperature must be a number in \\(0"),
])
def test_wrong_shot_configs_fail_at_compose_time(extra, match):
    with pytest.raises(ConfigError, match=match):
        compose("config=pretrain/tiny/shot_temporal_cpu", *extra)


def test_batches_pair_each_query_with_a_frame_of_another_shot(joined_frames):
    """Through VISSL's dataset, transforms and our collator, without random augmentation (so the
    collated pixels identify the stored frames): row b of shot_data_momentum is a frame of
    another shot than row b of data, and data_momentum one of the same shot."""
    from vissl.data import build_dataloader, build_dataset

    manifest = joined_frames / "manifest.json"
    cfg = compose("config=pretrain/tiny/shot_temporal_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{manifest}]",
                  "config.DATA.TRAIN.TRANSFORMS=[{name: VideoFramesToViews}, {name: ToTensor}]",
                  "config.DATA.TRAIN.BATCHSIZE_PER_REPLICA=8", "config.DATA.TRAIN.DATA_LIMIT=-1")
    ds = build_dataset(cfg, "TRAIN")
    loader = build_dataloader(dataset=ds, dataset_config=cfg["DATA"]["TRAIN"], num_dataloader_workers=0,
                              pin_memory=False, multi_processing_method="fork", device=torch.device("cpu"))
    (v,) = load_manifest(str(manifest))
    stored = {TF.to_tensor(read_image(v.frame_path(p))).numpy().tobytes(): v.frame_indices[p] for p in range(v.num_frames)}

    def clip(t):
        return stored[t.numpy().tobytes()] // 40  # ground truth: 40 source frames per joined clip

    seen = 0
    for i, batch in enumerate(loader):
        q, k, s = batch["data"][0], batch["data_momentum"][0], batch["shot_data_momentum"][0]
        assert q.shape == k.shape == s.shape == (8, 3, v.height, v.width)
        for b in range(8):
            assert clip(q[b]) == clip(k[b]) != clip(s[b])
            seen += 1
        if i == 2:
            break
    assert seen == 24
