"""Feature files a user may hand to tools/compute_ris.py that are not what they should be: each
is one `error:` line naming the file and exit code 2, never a traceback."""
import json

import numpy as np
import pytest
import torch

from vissl_ext.invariance.features_io import FeatureFileError, load_features, load_reference_alldata
from vissl_ext.invariance.ris_cli import main as compute_main

N, D = 30, 4


def _manifest(tmp_path):
    ents = [{"image": f"i{i}.png", "box": None, "trajectory": str(i // 5), "class": str((i // 5) % 3)} for i in range(N)]
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"format": "vissl_ext.ris_manifest", "version": 1, "set": "s", "invariance": "v",
                                "image_size": 64, "entries": ents}))
    return str(path)


def _write(tmp_path, kind):
    x = np.random.default_rng(0).standard_normal((N, D)).astype(np.float32)
    good = tmp_path / "good.npy"
    np.save(good, x)
    path = tmp_path / f"{kind}.npy"
    if kind == "empty":  # was EOFError: No data left in file
        path.write_bytes(b"")
    elif kind == "scalar":  # was TypeError: len() of unsized object
        np.save(path, np.float32(3))
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[:-40])
    elif kind == "truncated_npz":  # was zipfile.BadZipFile
        np.savez(tmp_path / "full.npz", features=x)
        path = tmp_path / f"{kind}.npz"
        path.write_bytes((tmp_path / "full.npz").read_bytes()[:200])
    elif kind == "rows":
        np.save(path, x[:N - 3])
    return str(path)


@pytest.mark.parametrize("kind,says", [("empty", "refused to load"), ("scalar", "a single number"),
                                       ("truncated", "refused to load"), ("truncated_npz", "refused to load"),
                                       ("rows", "27 feature rows, the manifest lists 30")])
def test_broken_feature_files_are_one_error_line(tmp_path, capsys, kind, says):
    path = _write(tmp_path, kind)
    with pytest.raises(FeatureFileError, match=says):
        load_features(path, num_images=N)
    rc = compute_main(["score", "--features", path, "--manifest", _manifest(tmp_path), "--model", "m",
                       "--out", str(tmp_path / "out"), "--no-chart"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith(f"error: {path}:") and says in err[0]
    assert not (tmp_path / "out").exists()


def test_bfloat16_alldata_scores_as_float32(tmp_path):
    """The public code's alldata.pth with bfloat16 features: was TypeError (no numpy bfloat16)."""
    x = torch.randn(N, D)
    traj = [str(i // 5) for i in range(N)]
    torch.save({"feat": x.bfloat16(), "instance": traj}, tmp_path / "a.pth")
    feats, inst, classes = load_reference_alldata(str(tmp_path / "a.pth"))
    assert feats.dtype == np.float32 and classes is None and list(inst) == traj
    np.testing.assert_array_equal(feats, x.bfloat16().float().numpy())
