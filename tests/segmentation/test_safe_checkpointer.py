"""detectron2's own checkpointer, as train_ade20k_segmentation uses it, refuses crafted .pkl and
.pth files (restricted unpickler / weights_only) and still loads real detectron2 weights."""
import importlib.util
import pickle

import numpy as np
import pytest
import torch
from vissl_ext_testing import write_crafted

if importlib.util.find_spec("detectron2") is None:  # `make test` installs it: a missing one fails, never skips
    raise ImportError("detectron2 is not installed: run `bash scripts/install_detectron2.sh`")

import vissl_ext.segmentation  # noqa: E402,F401  (d2 compat fixes before detectron2 imports)
from vissl_ext.utils.safe_load import UnsafeFileError  # noqa: E402
from vissl_ext.segmentation.safe_checkpointer import install  # noqa: E402


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 2, 1)


@pytest.fixture
def checkpointer():
    from detectron2.checkpoint import DetectionCheckpointer

    install()
    return DetectionCheckpointer(_Net())


@pytest.mark.parametrize("kind,name", [("pkl", "w.pkl"), ("torch_zip", "model_final.pth"), ("torch_legacy", "m.pth")])
def test_crafted_weights_are_refused(checkpointer, tmp_path, kind, name):
    marker = tmp_path / "PAYLOAD_RAN"
    path = write_crafted(tmp_path / name, marker, kind)
    with pytest.raises(UnsafeFileError, match="refused") as e:
        checkpointer.load(path)
    assert path in str(e.value)
    assert not marker.exists()


def test_real_weights_still_load(checkpointer, tmp_path):
    w = np.random.RandomState(0).rand(2, 3, 1, 1).astype(np.float32)
    with open(tmp_path / "w.pkl", "wb") as f:  # model-zoo format
        pickle.dump({"__author__": "test", "model": {"conv.weight": w, "conv.bias": np.ones(2, np.float32)}}, f)
    checkpointer.load(str(tmp_path / "w.pkl"))
    assert np.array_equal(checkpointer.model.conv.weight.detach().numpy(), w)
    # detectron2's own checkpoint (what resume reads)
    checkpointer.model.conv.bias.data.fill_(3.0)
    checkpointer.save_dir = str(tmp_path)
    checkpointer.save("model_final", iteration=5)
    checkpointer.model.conv.bias.data.zero_()
    extra = checkpointer.load(str(tmp_path / "model_final.pth"))
    assert extra["iteration"] == 5 and torch.all(checkpointer.model.conv.bias == 3.0)


def test_trust_pickle_restores_full_unpickling(tmp_path):
    from detectron2.checkpoint import DetectionCheckpointer

    marker = tmp_path / "PAYLOAD_RAN"
    path = write_crafted(tmp_path / "w.pkl", marker, "pkl")
    install(trust_pickle=True)
    try:
        DetectionCheckpointer(_Net()).load(path)
    finally:
        install(trust_pickle=False)
    assert marker.exists()
