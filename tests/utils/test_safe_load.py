"""vissl_ext.utils.safe_load: crafted pickles are refused with the file named and never run; what the
project and its users legitimately load (tensors, numpy features, detectron2 .pkl) still loads."""
import os
import pickle

import numpy as np
import pytest
import torch
from vissl_ext_testing import write_crafted

from vissl_ext.utils.safe_load import RestrictedUnpickler, UnsafeFileError, load_pickle, torch_load


@pytest.mark.parametrize("kind", ["torch_zip", "torch_legacy", "pkl"])
@pytest.mark.parametrize("loader", [torch_load, load_pickle])
def test_crafted_file_is_refused_naming_the_file(tmp_path, kind, loader):
    marker = tmp_path / "PAYLOAD_RAN"
    path = write_crafted(tmp_path / f"crafted.{kind}", marker, kind)
    with pytest.raises(UnsafeFileError) as e:
        loader(path)
    msg = str(e.value)
    assert path in msg and "refused" in msg and "\n" not in msg
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["torch_zip", "torch_legacy"])
def test_trust_pickle_runs_the_payload(tmp_path, kind):
    """Control: the crafted files are effective, so the refusals above are what keeps them inert."""
    marker = tmp_path / "PAYLOAD_RAN"
    torch_load(write_crafted(tmp_path / "c.torch", marker, kind), trust_pickle=True)
    assert marker.read_text() == "payload ran"


def test_trust_pickle_runs_the_payload_of_a_pkl(tmp_path):
    marker = tmp_path / "PAYLOAD_RAN"
    load_pickle(write_crafted(tmp_path / "c.pkl", marker, "pkl"), trust_pickle=True)
    assert marker.exists()


def test_checkpoints_of_tensors_and_numpy_features_load(tmp_path):
    sd = {"a.weight": torch.randn(3, 2), "n": torch.tensor(5)}
    torch.save({"classy_state_dict": {"model": sd}, "iteration": 7, "names": ["x", ("y", 1.5)]}, tmp_path / "c.torch")
    back = torch_load(str(tmp_path / "c.torch"))
    assert torch.equal(back["classy_state_dict"]["model"]["a.weight"], sd["a.weight"]) and back["iteration"] == 7
    # the public RIS code's alldata.pth holds numpy arrays (float features, int and string labels)
    feat = np.random.RandomState(0).rand(4, 3).astype(np.float32)
    classes = np.array(["cat", "dog", "cat", "dog"])
    torch.save({"feat": feat, "instance": np.arange(4), "classes": classes, "s": np.float64(2.5)}, tmp_path / "a.pth")
    back = torch_load(str(tmp_path / "a.pth"))
    assert np.array_equal(back["feat"], feat) and back["feat"].dtype == np.float32
    assert list(back["classes"]) == list(classes) and back["s"] == 2.5


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_detectron2_style_pkl_loads_with_every_protocol(tmp_path, protocol):
    from collections import OrderedDict

    model = OrderedDict(w=np.arange(6, dtype=np.float32).reshape(2, 3), b=np.array([1, 2], np.int64))
    doc = {"__author__": "vissl_ext", "matching_heuristics": True, "model": model, "n": np.int64(3), "tags": {"a", "b"}}
    with open(tmp_path / "w.pkl", "wb") as f:
        pickle.dump(doc, f, protocol=protocol)
    back = load_pickle(str(tmp_path / "w.pkl"))
    assert list(back["model"]) == ["w", "b"] and np.array_equal(back["model"]["w"], model["w"])
    assert back["model"]["b"].dtype == np.int64 and back["n"] == 3 and back["tags"] == {"a", "b"}


def test_codecs_encode_is_admitted_for_latin1_only():
    import io

    ok = pickle.dumps(b"\x00\xffab", protocol=2)  # protocol 2: _codecs.encode(str, 'latin1')
    assert RestrictedUnpickler(io.BytesIO(ok)).load() == b"\x00\xffab"
    bad = ok.replace(b"latin1", b"utf_16")
    assert bad != ok
    with pytest.raises(pickle.UnpicklingError, match="utf_16"):
        RestrictedUnpickler(io.BytesIO(bad)).load()


def test_non_pickle_file_is_a_clear_error(tmp_path):
    p = tmp_path / "notes.torch"
    p.write_text("not a checkpoint")
    with pytest.raises(UnsafeFileError, match=str(p)):
        torch_load(str(p))
    assert not os.path.exists(tmp_path / "PAYLOAD_RAN")


@pytest.mark.parametrize("mmap", [True, False])
def test_vissl_label_files_load_safely(tmp_path, mmap):
    """VISSL's disk_filelist label loader (patched by vissl_ext.utils.compat: the host uses
    allow_pickle=True): numeric, string and list labels load; a crafted object array is refused."""
    from types import SimpleNamespace

    from vissl.data.ssl_dataset import GenericSSLDataset

    ds = SimpleNamespace(cfg={"DATA": {"TRAIN": SimpleNamespace(MMAP_MODE=mmap)}}, split="TRAIN")
    load = GenericSSLDataset.load_single_label_file
    np.save(tmp_path / "ints.npy", np.array([3, 1, 2]))
    np.save(tmp_path / "names.npy", np.array(["cat", "dog"]))
    np.save(tmp_path / "multi.npy", np.array([[1, 2], [3]], dtype=object), allow_pickle=True)
    assert list(load(ds, str(tmp_path / "ints.npy"))) == [3, 1, 2]
    assert list(load(ds, str(tmp_path / "names.npy"))) == ["cat", "dog"]
    assert [list(x) for x in load(ds, str(tmp_path / "multi.npy"))] == [[1, 2], [3]]
    marker = tmp_path / "PAYLOAD_RAN"
    crafted = write_crafted(tmp_path / "labels.npy", marker, "npy")
    with pytest.raises(UnsafeFileError, match="labels.npy: refused"):
        load(ds, crafted)
    assert not marker.exists()
