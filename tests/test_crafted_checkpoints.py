"""A crafted checkpoint (a pickle payload that writes a marker file) given to every entry point
that reads checkpoints, weights, features or .pkl files: refused with one error line naming the
file, and the payload never runs. The --trust-pickle control shows the files are live."""
import json
import os

import pytest
from vissl_ext_testing import frame_folder, run_tool, write_crafted, write_video_manifest


@pytest.fixture
def data(tmp_path):
    """A frame folder with its video manifest and a RIS manifest over the same images."""
    d = tmp_path / "data"
    entry = frame_folder(d)
    manifest = write_video_manifest(d / "manifest.json", [entry])
    ris = d / "ris.json"
    ris.write_text(json.dumps({"format": "vissl_ext.ris_manifest", "version": 1, "set": "s", "image_size": 32,
                               "entries": [{"image": os.path.join(entry["source"], n), "box": None, "trajectory": "t",
                                            "class": "c"} for n in entry["frames"]]}))
    (d / "props").mkdir()
    return {"manifest": manifest, "ris": str(ris), "props": str(d / "props"), "out": str(tmp_path / "out"),
            "images": os.path.dirname(entry["source"])}  # an ImageFolder: one class, "v"


def _entry_points(d, ckpt):
    """(tool, argv) of every reader of such a file; ``ckpt`` is the crafted file."""
    ade = ["--dataset-root", os.path.dirname(d["out"]), "--num-gpus", "1"]
    return {
        "convert": ("convert_vissl_to_detectron2", [ckpt, "-o", os.path.join(d["out"], "w.pkl")]),
        "track_regions": ("track_regions", [d["manifest"], d["props"], d["out"], "--checkpoint", ckpt, "--no-progress"]),
        "ris_torchvision": ("compute_ris", ["torchvision", "--manifest", d["ris"], "--arch", "resnet18", "--weights", ckpt,
                                            "--model", "m", "--out", d["out"], "--workers", "0"]),
        "ris_score_alldata": ("compute_ris", ["score", "--features", ckpt, "--model", "m", "--out", d["out"]]),
        "ade20k_weights": ("train_ade20k_segmentation", [*ade, "--weights", ckpt, "OUTPUT_DIR", d["out"]]),
        "ade20k_model_weights": ("train_ade20k_segmentation", [*ade, "OUTPUT_DIR", d["out"], "MODEL.WEIGHTS", ckpt]),
        "ris_engine": ("run_distributed_engines", ["config=benchmark/ris/custom", f"config.DATA.TEST.DATA_PATHS=[{d['ris']}]",
                                                   f"config.CHECKPOINT.DIR={d['out']}",
                                                   f"config.MODEL.WEIGHTS_INIT.PARAMS_FILE={ckpt}"]),
        "export": ("export_trunk", [ckpt, "--format", "safetensors", "--out", os.path.join(d["out"], "t.safetensors")]),
        "knn_eval": ("knn_eval", [ckpt, "--train", d["images"], "--test", d["images"], "--out", d["out"]]),
        "draw_embedding": ("draw_embedding", ["--manifest", d["ris"], "--checkpoint", ckpt, "--name", "m", "--out", d["out"]]),
        "pretrain_params_file": ("run_distributed_engines", ["config=pretrain/tiny/frame_temporal_cpu",
                                                             f"config.DATA.TRAIN.DATA_PATHS=[{d['manifest']}]",
                                                             f"config.CHECKPOINT.DIR={d['out']}",
                                                             f"config.MODEL.WEIGHTS_INIT.PARAMS_FILE={ckpt}"]),
    }


def _assert_refused(code, out, path, marker):
    assert not os.path.exists(marker), "the payload ran"
    assert code == 2, out[-3000:]
    errors = [line for line in out.splitlines() if "error:" in line and path in line]
    assert len(errors) >= 1 and "refused" in errors[0], out[-3000:]
    assert "Traceback" not in out, out[-3000:]


ENTRY_POINTS = ["convert", "track_regions", "ris_torchvision", "ris_score_alldata", "ade20k_weights",
                "ade20k_model_weights", "ris_engine", "pretrain_params_file", "export", "knn_eval", "draw_embedding"]


def _crafted_through(tmp_path, data, entry, name, kind, capsys):
    """Write a crafted file of ``kind`` as ``name``, pass it to ``entry``: refused, payload never run."""
    marker = str(tmp_path / "PAYLOAD_RAN")
    f = write_crafted(tmp_path / name, marker, kind)
    tool, argv = _entry_points(data, f)[entry]
    code, out = run_tool(tool, argv, capsys)
    _assert_refused(code, out, f, marker)


@pytest.mark.parametrize("kind", ["torch_zip", "torch_legacy"])
@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_crafted_torch_file_is_refused_everywhere(tmp_path, data, entry, kind, capsys):
    _crafted_through(tmp_path, data, entry, "crafted.pth", kind, capsys)  # .pth: also the alldata.pth route


@pytest.mark.parametrize("entry", ["ade20k_weights", "ade20k_model_weights"])
def test_crafted_detectron2_pkl_is_refused(tmp_path, data, entry, capsys):
    """A .pkl given as weights goes to detectron2's own pickle loader in the workers: checked first."""
    _crafted_through(tmp_path, data, entry, "R-50.pkl", "pkl", capsys)


@pytest.mark.parametrize("ext", ["npy", "npz"])
def test_crafted_feature_matrix_is_refused(tmp_path, data, ext, capsys):
    marker = str(tmp_path / "PAYLOAD_RAN")
    feats = write_crafted(tmp_path / f"feats.{ext}", marker, ext)
    code, out = run_tool("compute_ris", ["score", "--manifest", data["ris"], "--features", feats, "--model", "m",
                                         "--out", data["out"]], capsys)
    _assert_refused(code, out, feats, marker)


def test_crafted_proposals_cache_is_refused(tmp_path, data, capsys):
    """track_regions reads <proposals>/<id>.npz; an object array there is refused."""
    marker = str(tmp_path / "PAYLOAD_RAN")
    write_crafted(os.path.join(data["props"], "v.npz"), marker, "npz")
    code, out = run_tool("track_regions", [data["manifest"], data["props"], data["out"], "--checkpoint", "random",
                                           "--no-progress"], capsys)
    assert not os.path.exists(marker)
    assert code == 2 and os.path.join(data["props"], "v.npz") in out and "Traceback" not in out, out[-3000:]


def test_trust_pickle_control_runs_the_payload(tmp_path, data, capsys):
    """With the explicit opt-in the same file is unpickled as before: the payload runs."""
    marker = str(tmp_path / "PAYLOAD_RAN")
    ckpt = write_crafted(tmp_path / "c.torch", marker, "torch_zip")
    tool, argv = _entry_points(data, ckpt)["convert"]
    run_tool(tool, [*argv, "--trust-pickle"], capsys)
    assert os.path.exists(marker)


@pytest.mark.parametrize("tool", ["convert_vissl_to_detectron2", "track_regions", "compute_ris",
                                  "train_ade20k_segmentation", "export_trunk", "knn_eval", "draw_embedding"])
def test_trust_pickle_help_states_the_risk(tool, capsys):
    argv = ["torchvision", "--help"] if tool == "compute_ris" else ["--help"]
    code, out = run_tool(tool, argv, capsys)
    assert code == 0 and "--trust-pickle" in out
    assert "runs any code" in " ".join(out.split())


def test_run_study_refuses_crafted_torchvision_weights(tmp_path, data, capsys):
    """tools/run_study.py prepares a torchvision model's trunk from its weights file: the crafted
    file fails that model alone (exit code 1, the file named in the summary), the payload never runs."""
    import yaml

    marker = str(tmp_path / "PAYLOAD_RAN")
    ckpt = write_crafted(tmp_path / "tv.pth", marker, "torch_zip")
    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({"models": [{"name": "Crafted", "kind": "torchvision", "weights": ckpt}],
                                     "evaluations": [{"name": "F", "kind": "ris", "manifest": data["ris"]}]}))
    code, out = run_tool("run_study", [study, "--out", data["out"], "--no-progress"], capsys)
    assert not os.path.exists(marker)
    summary = json.loads(open(os.path.join(data["out"], "study_summary.json")).read())
    assert code == 1 and [f["cell"] for f in summary["failed"]] == ["Crafted (model)"], out[-3000:]
    assert ckpt in summary["failed"][0]["error"] and "refused" in summary["failed"][0]["error"]
