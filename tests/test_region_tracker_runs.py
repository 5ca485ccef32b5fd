"""pretrain/region_tracker end to end on ../shared/data: real frames, real selective search, the
Region Tracker's tracks, VISSL's launcher (1 and 2 gloo processes; 2 nodes preempted and requeued),
host benchmark load."""
import json
import math
import os

import pytest
import torch

from vissl_ext_testing import QUEUE_DUMP_PLUGIN, assert_job_succeeded, compose, run_engine, run_two_nodes

pytestmark = pytest.mark.slow


def losses(ckpt_dir):
    with open(os.path.join(ckpt_dir, "stdout.json")) as f:
        return [json.loads(line)["loss"] for line in f if line.strip()]


def base(tracks, ckpt_dir, *extra):
    return ["config=pretrain/tiny/region_tracker_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{tracks}]",
            f"config.CHECKPOINT.DIR={ckpt_dir}", *extra]


def test_tracks_were_made(tracks):
    idx = json.load(open(tracks / "index.json"))
    assert idx["kind"] == "region_tracker" and len(idx["videos"]) == 2


def test_two_iterations_then_host_linear_benchmark_loads_the_trunk(tracks, tmp_path):
    rc, out = run_engine(base(tracks, tmp_path / "ck"), cwd=tmp_path)
    assert rc == 0, out[-3000:]
    ls = losses(tmp_path / "ck")
    assert len(ls) == 2 and all(math.isfinite(x) for x in ls)
    assert "with at least one region pair" in (tmp_path / "ck" / "log.txt").read_text()
    # the progress lines name both terms of the temporal contrastive loss
    progress = [x for x in out.splitlines() if x.startswith("iter ")]
    assert len(progress) == 2 and all(" frame " in x and " region " in x for x in progress), out
    path = tmp_path / "ck" / "model_final_checkpoint_phase0.torch"
    ck = torch.load(path, map_location="cpu")
    loss_state = ck["classy_state_dict"]["loss"]
    assert {"queue", "region_queue", "queue_ptr", "region_queue_ptr"} <= set(loss_state)
    assert any(k.startswith("moco_encoder.") for k in loss_state)

    from vissl.models import build_model

    cfg = compose("config=benchmark/linear_image_classification/imagenet1k/eval_resnet_8gpu_transfer_in1k_linear",
                  f"config.MODEL.WEIGHTS_INIT.PARAMS_FILE={path}", "config.MACHINE.DEVICE=cpu")
    model = build_model(cfg.MODEL, cfg.OPTIMIZER)
    model.init_model_from_weights_params_file(cfg, ck)
    ours = ck["classy_state_dict"]["base_model"]["model"]["trunk"]
    loaded = model.trunk.state_dict()
    common = [k for k in ours if k.replace("_feature_blocks.", "base_model._feature_blocks.") in loaded]
    assert len(common) == len(ours) > 300
    for k in common:
        if k.endswith("num_batches_tracked"):  # VISSL's loader leaves BN step counters alone
            continue
        assert torch.equal(loaded[k.replace("_feature_blocks.", "base_model._feature_blocks.")], ours[k]), k


def test_two_processes_keep_queues_identical(tracks, tmp_path):
    (tmp_path / "plug").mkdir()
    (tmp_path / "plug" / "queue_dump_plugin.py").write_text(QUEUE_DUMP_PLUGIN)
    env = {"VISSL_EXT_PLUGINS": "queue_dump_plugin", "DUMP_DIR": str(tmp_path),
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "plug"), os.environ.get("PYTHONPATH", "")])}
    rc, out = run_engine(base(tracks, tmp_path / "ck", "config.DISTRIBUTED.NUM_PROC_PER_NODE=2",
                              "config.MULTI_PROCESSING_METHOD=spawn", "config.DATA.TRAIN.DATA_LIMIT=16"),
                         cwd=tmp_path, env=env)
    assert rc == 0, out[-3000:]
    r0, r1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert int(r0["queue_ptr"]) == 16  # 2 iterations x 2 ranks x 4 frame keys, gathered
    assert int(r0["region_queue_ptr"]) > 0
    for k in ("queue", "queue_ptr", "region_queue", "region_queue_ptr"):
        assert torch.equal(r0[k], r1[k]), k
    # the momentum encoders follow identical (all-reduced) models
    enc = [k for k in r0 if k.startswith("moco_encoder.") and k.endswith("weight")]
    assert all(torch.allclose(r0[k], r1[k], atol=1e-6) for k in enc[:20])


def test_two_nodes_preempted_while_saving_are_requeued_and_resume(tracks, tmp_path, capsys):
    """2 nodes (run_two_nodes: the launcher's SLURM route on submitit's LocalExecutor), one step per
    phase (8 samples, batch 4 x 2 ranks), momentum 0.9. The final checkpoint's write is cut short
    in place and SIGUSR2 (SLURM's preemption signal, as submitit handles it) reaches node 0's task:
    VisslExtSlurmJob.checkpoint() returns the job to requeue, the requeued job moves the corrupt
    final checkpoint aside and resumes from model_phase0.torch. The resumed step's momentum update
    starts from the saved encoder, so the final encoder is exactly 0.9 * saved encoder + 0.1 *
    saved trunk (a rebuilt encoder would be the trunk; a skipped update, the saved one), and the
    queues keep the keys saved before the stop."""
    ck = tmp_path / "ck"
    m = 0.9
    # a region queue large enough that phase 1 cannot wrap over the keys of phase 0
    job, (node0, node1) = run_two_nodes(
        base(tracks, ck, "config.OPTIMIZER.num_epochs=2", "config.LOSS.temporal_contrastive_loss.region_queue_size=1024",
             f"config.LOSS.temporal_contrastive_loss.momentum={m}"), tmp_path / "slurm",
        preempt_at_save=f"2:{tmp_path / 'preempted'}")
    assert_job_succeeded(job, node0, node1)
    (submitted,) = [x for x in capsys.readouterr().out.splitlines() if x.startswith("submitted: ")]
    assert submitted == (f"submitted: job {job.job_id} (2 nodes x 1 process), logs in {tmp_path / 'slurm'}; "
                         f"watch: tail -f {tmp_path / 'slurm'}/{job.job_id}_0_log.out")
    # preempted once, requeued through checkpoint(), both nodes started again
    assert (tmp_path / "preempted").exists() and not (tmp_path / "preempted.not_stopped").exists()
    first, requeued = node0.split("Starting with JobEnvironment")[1:]
    assert "Caught signal SIGUSR2" in first and "Calling checkpoint method" in first and "Requeued job" in first
    assert node1.count("Starting with JobEnvironment") == 2
    # the corrupt final checkpoint was moved aside, training resumed from phase 0 and trained phase 1
    # only: no step before the last valid checkpoint ran twice
    assert f"Resume from file: {ck}/model_phase0.torch" in requeued
    assert "train:  2 iterations, resuming at 1 " in requeued
    assert [x.split()[1] for x in requeued.splitlines() if x.startswith("iter ")] == ["2/2"]
    assert (ck / "model_final_checkpoint_phase1.torch.corrupt").is_file()
    saved = torch.load(ck / "model_phase0.torch", map_location="cpu", weights_only=True)["classy_state_dict"]
    phase0 = saved["loss"]
    last = torch.load(ck / "model_final_checkpoint_phase1.torch", map_location="cpu", weights_only=True)
    assert last["iteration"] == 2
    final = last["classy_state_dict"]["loss"]
    n = int(phase0["queue_ptr"])
    assert n == 8 and int(final["queue_ptr"]) == 16  # 4 keys x 2 ranks per step, gathered
    # keys written before the stop survive in the resumed queue (a fresh queue would be random)
    assert torch.equal(final["queue"][:, :n], phase0["queue"][:, :n])
    r = int(phase0["region_queue_ptr"])
    assert r > 0 and int(final["region_queue_ptr"]) > r
    assert torch.equal(final["region_queue"][:, :r], phase0["region_queue"][:, :r])
    # the encoder: parameters (weights and biases; BN statistics are buffers, not averaged)
    model0 = saved["base_model"]["model"]
    names = [k for k in phase0 if k.startswith("moco_encoder.") and k.endswith((".weight", ".bias"))]
    assert len(names) > 150
    far_from_trunk = far_from_saved = 0.0
    for k in names:
        part, name = k[len("moco_encoder."):].split(".", 1)  # trunk.<...> / heads.<...>
        enc0, q0 = phase0[k].double(), model0[part][name].double()
        want = m * enc0 + (1 - m) * q0
        assert torch.allclose(final[k].double(), want, rtol=1e-5, atol=1e-6), k
        far_from_trunk = max(far_from_trunk, float((final[k] - q0).abs().max()))
        far_from_saved = max(far_from_saved, float((final[k] - enc0).abs().max()))
    assert far_from_trunk > 1e-3 and far_from_saved > 1e-4  # the check tells the three cases apart


def test_device_augmentation_backend_trains_region_pairs(tracks, tmp_path):
    """AUGMENT_BACKEND=device: boxes moved by the CPU crop/flip, photometry batched on the device."""
    rc, out = run_engine(base(tracks, tmp_path / "ck", "config.DATA.TRAIN.AUGMENT_BACKEND=device"), cwd=tmp_path,
                         env={"VISSL_EXT_VERBOSE": "1"})  # the asserts read VISSL's own console lines
    assert rc == 0, out[-3000:]
    assert "adds ['DeviceAugmentHook']" in out and "with at least one region pair" in out
    ls = losses(tmp_path / "ck")
    assert len(ls) == 2 and all(math.isfinite(x) for x in ls)


def test_pool_then_project_with_channels_last_trains(tracks, tmp_path):
    """The paper's region embedding through VISSL's launcher; its checkpoint has the default's keys
    and shapes (either embedding loads the other's weights)."""
    rc, out = run_engine(base(tracks, tmp_path / "ck", "config.MODEL.HEAD.PARAMS.1.1.embedding=pool_then_project",
                              "config.MODEL.TRUNK.CHANNELS_LAST=true"), cwd=tmp_path)
    assert rc == 0, out[-3000:]
    ls = losses(tmp_path / "ck")
    assert len(ls) == 2 and all(math.isfinite(x) for x in ls)
    ck = torch.load(tmp_path / "ck" / "model_final_checkpoint_phase0.torch", map_location="cpu", weights_only=True)
    head = {k: v.shape for k, v in ck["classy_state_dict"]["base_model"]["model"]["heads"].items() if k.startswith("1.")}
    assert head == {"1.mlp.0.weight": (1024, 1024, 1, 1), "1.mlp.0.bias": (1024,), "1.mlp.2.weight": (128, 1024, 1, 1),
                    "1.mlp.2.bias": (128,)}


GPU_AMP = ["config.MACHINE.DEVICE=gpu", "config.DISTRIBUTED.BACKEND=nccl", "config.DISTRIBUTED.NUM_PROC_PER_NODE=1",
           "config.MODEL.AMP_PARAMS.USE_AMP=true", "config.MODEL.AMP_PARAMS.AMP_TYPE=pytorch"]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="VISSL runs mixed precision on CUDA only")
@pytest.mark.parametrize("extra", [[], ["config.MODEL.TRUNK.CHANNELS_LAST=true",
                                        "config.MODEL.HEAD.PARAMS.1.1.embedding=pool_then_project"]])
def test_mixed_precision_trains_on_a_gpu(tracks, tmp_path, extra):
    """USE_AMP with AMP_TYPE=pytorch: VISSL's torch.cuda.amp autocast and GradScaler, boxes in fp32."""
    rc, out = run_engine(base(tracks, tmp_path / "ck", *GPU_AMP, *extra), cwd=tmp_path, env={"VISSL_EXT_VERBOSE": "1"})
    assert rc == 0, out[-3000:]
    assert "Setting AMP: AmpType.PYTORCH" in out
    ls = losses(tmp_path / "ck")
    assert len(ls) == 2 and all(math.isfinite(x) for x in ls)
