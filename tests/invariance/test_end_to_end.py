"""End to end on real images (../shared/data): trajectories from real video frames, features of
a torchvision model and of a VISSL checkpoint through the host launcher (1 and 2 processes),
scores, JSON, table and chart."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import REPO, shared_path
from vissl_ext.invariance.features_io import load_features
from vissl_ext.invariance.images import RISImageError
from vissl_ext.invariance.manifest import RISEntry, RISManifest, load_ris_manifest
from vissl_ext.invariance.ris import compute_ris

_spec = importlib.util.spec_from_file_location("ris_loop", os.path.join(os.path.dirname(__file__), "ris_loop.py"))
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
ris_loop = _mod.ris_loop


def _run(args, **kw):
    out = subprocess.run([sys.executable] + args, cwd=REPO, capture_output=True, text=True, timeout=600, **kw)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def real_manifest(tmp_path_factory):
    """Frames of three real videos (one trajectory each) and a real viewpoint pair (2 images:
    a short trajectory, counted and skipped), folder layout -> manifest."""
    videos = [shared_path("video_pysot_bag", "bag.avi"), shared_path("video_opencv", "cup.mp4"),
              shared_path("video_opencv", "box.mp4")]
    graf = [shared_path("multiview_opencv_pairs", n) for n in ("graf1.png", "graf3.png")]
    tmp = tmp_path_factory.mktemp("ris_real")
    _run(["tools/extract_frames.py", *videos, str(tmp / "ex"), "--stride", "20", "--max-frames", "6",
          "--short-side", "96", "--no-progress"])
    data = tmp / "trajectories"
    for v in ("bag", "cup", "box"):
        src = tmp / "ex" / "frames" / v
        os.makedirs(data / v)
        for f in sorted(os.listdir(src)):
            if f.endswith(".jpg"):
                os.link(src / f, data / v / f)
    os.makedirs(data / "graf")
    for g in graf:
        Image.open(g).convert("RGB").resize((120, 96)).save(data / "graf" / os.path.basename(g))
    out = _run(["tools/build_ris_trajectories.py", "folders", str(data), "--invariance", "video_frames",
                "--image-size", "64", "--out", str(tmp / "manifest.json")])
    assert "4 trajectories" in out
    return str(tmp / "manifest.json")


def test_torchvision_model_end_to_end(real_manifest, tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(0)
    net = resnet18(weights=None)
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, tmp_path / "w.pth")
    out_dir = tmp_path / "res"
    args = ["tools/compute_ris.py", "torchvision", "--manifest", real_manifest, "--arch", "resnet18",
            "--weights", str(tmp_path / "w.pth"), "--state-dict-key", "state_dict", "--model", "r18",
            "--out", str(out_dir), "--topk", "5", "10", "--workers", "0"]
    log = _run(args)
    assert "Top-5" in log and "r18" in log
    rec = json.loads((out_dir / "ris_r18__trajectories.json").read_text())
    assert rec["invariance"] == "video_frames" and rec["num_images"] == 20
    assert rec["num_trajectories_used"] == 3 and rec["num_short_trajectories"] == 1
    assert rec["classes_without_trajectories"] == ["graf"]
    feats = np.load(out_dir / "features_r18__trajectories_avgpool.npy")
    assert feats.shape == (20, 512) and np.isfinite(feats).all()
    # the saved features are the model's pooled output on the resized images
    m = load_ris_manifest(real_manifest)
    import torchvision.transforms as T

    tf = T.Compose([T.Resize((64, 64)), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    net.fc = torch.nn.Identity()
    with torch.no_grad():
        direct = net.eval()(torch.stack([tf(Image.open(e.image).convert("RGB")) for e in m.entries[:4]])).numpy()
    np.testing.assert_allclose(feats[:4], direct, rtol=1e-4, atol=1e-5)
    want, _ = ris_loop(feats, m.trajectories, m.classes, topk=(5, 10))
    for k in (5, 10):
        assert rec["scores"][str(k)] == pytest.approx(want[k], rel=1e-12)
    png = (out_dir / "ris_chart.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "reusing" in _run(args)  # resumable: features are not extracted twice


def test_report_table_and_chart_compare_models(tmp_path):
    from vissl_ext.invariance.report import format_table, plot_chart

    recs = [{"model": m, "set": s, "invariance": inv, "scores": {"10": v, "25": v - 5}}
            for m, base in (("Sup. R50", 80.0), ("MOCOv2", 70.0))
            for s, inv, v in (("aloi_viewpoint", "viewpoint", base), ("got10k_occlusion", "occlusion", base + 3))]
    table = format_table(recs).splitlines()
    assert table[0].split() == ["Occlusion", "Viewpoint"]  # paper's column order
    assert table[1].split() == ["Method", "Top-10", "Top-25", "Top-10", "Top-25"]
    assert table[3].split() == ["Sup.", "R50", "83.00", "78.00", "80.00", "75.00"]
    assert table[4].split() == ["MOCOv2", "73.00", "68.00", "70.00", "65.00"]
    for i, r in enumerate(recs):
        (tmp_path / f"ris_{i}.json").write_text(json.dumps(r))
    log = _run(["tools/compute_ris.py", "report", str(tmp_path), "--chart", str(tmp_path / "c.png")])
    assert "MOCOv2" in log and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert plot_chart(recs, str(tmp_path / "d.png"))


def test_data_source_crops_before_resize_and_errors_name_the_file(tmp_path):
    import vissl_ext  # noqa: F401
    from vissl.data import DATASET_SOURCE_MAP

    Image.new("RGB", (50, 40), (10, 20, 30)).save(tmp_path / "a.png")
    (tmp_path / "bad.jpg").write_bytes(b"garbage")
    m = RISManifest(entries=[RISEntry(str(tmp_path / "a.png"), "t", "c", box=[5, 6, 20, 10]),
                             RISEntry(str(tmp_path / "a.png"), "t", "c", box=[45, 35, 20, 10]),  # partly outside
                             RISEntry(str(tmp_path / "a.png"), "t", "c", box=[60, 6, 20, 10]),
                             RISEntry(str(tmp_path / "bad.jpg"), "t", "c")])
    m.save(str(tmp_path / "m.json"))
    src = DATASET_SOURCE_MAP["ris_manifest"](cfg=None, data_source="ris_manifest", path=str(tmp_path / "m.json"),
                                             split="TEST", dataset_name="vissl_ext_ris")
    img, ok = src[0]
    assert ok and img.size == (20, 10)
    img, _ = src[1]  # padded with black outside the image, as torchvision's crop in the public code
    assert img.size == (20, 10) and img.getpixel((0, 0)) == (10, 20, 30) and img.getpixel((19, 9)) == (0, 0, 0)
    with pytest.raises(RISImageError, match="outside the 50x40 image"):
        src[2]
    with pytest.raises(RISImageError, match="bad.jpg: cannot read"):
        src[3]


def _vissl_overrides(manifest, ckpt_dir, params_file, procs):
    return ["config=benchmark/ris/custom", f"config.DATA.TEST.DATA_PATHS=[{manifest}]",
            "config.MACHINE.DEVICE=cpu", "config.DISTRIBUTED.BACKEND=gloo",
            f"config.DISTRIBUTED.NUM_PROC_PER_NODE={procs}", "config.DATA.NUM_DATALOADER_WORKERS=0",
            "config.MULTI_PROCESSING_METHOD=fork", f"config.CHECKPOINT.DIR={ckpt_dir}",
            "config.DATA.TEST.BATCHSIZE_PER_REPLICA=4", f"config.MODEL.WEIGHTS_INIT.PARAMS_FILE={params_file}",
            "config.DATA.TEST.TRANSFORMS=[{name: Resize, size: [64, 64]}, {name: ToTensor}]",
            "config.RIS.TOPK=[5,10]", "config.RIS.MODEL_NAME=ckpt"]


@pytest.mark.slow
def test_vissl_checkpoint_through_host_launcher_1_and_2_processes(real_manifest, tmp_path):
    """config=benchmark/ris/custom through tools/run_distributed_engines.py: the features are
    the checkpoint's trunk output (checked against the model run here), identical with 2 gloo
    processes, and the written scores equal the plain implementation's."""
    import torchvision.transforms as T
    from torchvision.models import resnet50

    # a checkpoint in VISSL's format (trunk keys _feature_blocks.*), from a torchvision ResNet-50
    torch.manual_seed(123)
    net = resnet50(weights=None)
    for mod in net.modules():  # non-trivial BN statistics, so eval-mode BN matters
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.running_mean.uniform_(-0.1, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    trunk = {f"_feature_blocks.{k}": v for k, v in net.state_dict().items() if not k.startswith("fc.")}
    ckpt = tmp_path / "model_phase7.torch"
    torch.save({"classy_state_dict": {"base_model": {"model": {"trunk": trunk, "heads": {}}}}}, ckpt)

    m = load_ris_manifest(real_manifest)
    net.fc = torch.nn.Identity()
    with torch.no_grad():
        batch = torch.stack([T.ToTensor()(T.Resize((64, 64))(Image.open(e.image).convert("RGB"))) for e in m.entries])
        want_feats = net.eval()(batch).numpy()

    # a checkpoint VISSL would silently skip is refused
    bad = tmp_path / "bad.torch"
    torch.save({"classy_state_dict": {"base_model": {"model": {"trunk": {"base_model.x": torch.zeros(1)}}}}}, bad)
    fail = subprocess.run([sys.executable, "tools/run_distributed_engines.py",
                           *_vissl_overrides(real_manifest, tmp_path / "bad", bad, 1)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert fail.returncode != 0 and "randomly initialised" in fail.stdout + fail.stderr

    results = {}
    for procs in (1, 2):
        out = tmp_path / f"run{procs}"
        log = _run(["tools/run_distributed_engines.py", *_vissl_overrides(real_manifest, out, ckpt, procs)])
        assert "ckpt" in log and "Top-5" in log
        # CPU extraction reports progress on the quiet console, from rank 0 only
        progress = [x for x in log.splitlines() if x.startswith("features: batch ")]
        assert progress and progress[-1].startswith("features: batch ") and len(progress) <= 1 + len(m.entries) // 4
        feats = load_features(str(out / "features"), num_images=len(m.entries))
        # each process runs on its share of the cores: float32 sums over other thread splits
        np.testing.assert_allclose(feats, want_feats, rtol=1e-4, atol=1e-4)
        if procs == 2:
            assert len([f for f in os.listdir(out / "features") if f.endswith("_features.npy")]) == 2
        rec = json.loads((out / "ris_ckpt__trajectories.json").read_text())
        want, _ = ris_loop(feats, m.trajectories, m.classes, topk=(5, 10))
        assert rec["scores"]["5"] == pytest.approx(want[5], rel=1e-12)
        assert (out / "ris_trajectories.png").exists()
        results[procs] = feats
    np.testing.assert_allclose(results[1], results[2], rtol=1e-4, atol=1e-4)


def test_score_public_code_alldata_file(tmp_path):
    """The public code's stored features (alldata.pth: feat, instance, classes) score directly."""
    rng = np.random.default_rng(4)
    feat = np.maximum(rng.standard_normal((240, 64)), 0)
    inst = np.arange(240) // 8
    classes = [f"c{i % 5}" for i in inst]
    torch.save({"feat": feat, "instance": list(inst), "classes": classes}, tmp_path / "alldata.pth")
    _run(["tools/compute_ris.py", "score", "--features", str(tmp_path / "alldata.pth"), "--model", "m",
          "--set", "got10k_occlusion", "--invariance", "occlusion", "--out", str(tmp_path / "r"), "--no-chart"])
    rec = json.loads((tmp_path / "r" / "ris_m__got10k_occlusion.json").read_text())
    want, _ = ris_loop(feat, inst, classes)
    assert rec["scores"]["10"] == pytest.approx(want[10], rel=1e-12)
    assert rec["num_classes"] == 5 and rec["firing_rate_percent"] == pytest.approx(20.0)
