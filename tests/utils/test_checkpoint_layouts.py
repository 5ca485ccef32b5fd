"""Every public checkpoint layout is recognised without key rules from the user: small synthetic
files written in each layout (random ResNet-18 weights; two different encoders where the layout
has two) load into torchvision's ResNet-18 with the online or momentum encoder's exact weights,
and each load logs one line with the layout and the counts."""
import pytest
import torch
import torchvision

from vissl_ext.utils.checkpoint_layouts import (
    TrunkMismatchError,
    infer_resnet_arch,
    load_into,
    read_trunk,
    trunk_from_object,
)
from vissl_ext.utils.safe_load import UnsafeFileError


def _net(seed, arch="resnet18"):
    torch.manual_seed(seed)
    m = torchvision.models.get_model(arch, weights=None)
    with torch.no_grad():  # BN statistics differ too, so a wrong buffer mapping shows
        for b in m.buffers():
            if b.dtype.is_floating_point:
                b.uniform_(0.5, 1.5)
    return m


ONLINE, MOMENTUM = _net(1), _net(2)
Q, K = ONLINE.state_dict(), MOMENTUM.state_dict()
TRUNK = {k: v for k, v in Q.items() if not k.startswith("fc.")}
TRUNK_K = {k: v for k, v in K.items() if not k.startswith("fc.")}


def _pre(prefix, sd):
    return {prefix + k: v for k, v in sd.items()}


def _mlp(prefix):
    return {f"{prefix}0.weight": torch.randn(8, 512), f"{prefix}0.bias": torch.randn(8), f"{prefix}2.weight": torch.randn(4, 8)}


VISSL_LOSS = {"queue": torch.randn(4, 16), "queue_ptr": torch.zeros(1, dtype=torch.long),
              **_pre("moco_encoder.trunk._feature_blocks.", TRUNK_K), **_mlp("moco_encoder.heads.0.clf.")}
# (name, file content, layout name expected, whether a momentum encoder is in the file)
LAYOUTS = [
    ("torchvision", Q, "torchvision / timm state dict", False),
    ("torchvision_ddp", _pre("module.", Q), "torchvision / timm state dict", False),
    ("timm_train", {"epoch": 3, "arch": "resnet18", "state_dict": Q, "state_dict_ema": K, "optimizer": {"state": {}}},
     "timm training checkpoint", True),
    ("moco_official", {"epoch": 200, "arch": "resnet18", "optimizer": {"state": {}, "param_groups": []},
                       "state_dict": {**_pre("module.encoder_q.", TRUNK), **_mlp("module.encoder_q.fc."),
                                      **_pre("module.encoder_k.", TRUNK_K), **_mlp("module.encoder_k.fc."),
                                      "module.queue": torch.randn(4, 16), "module.queue_ptr": torch.zeros(1)}},
     "MoCo v1/v2 official", True),
    # as VISSL writes it: the loss state (momentum encoder, queues) both at the top and in classy_state_dict
    ("vissl_checkpoint", {"phase_idx": 0, "iteration": 6, "type": "consolidated", "loss": VISSL_LOSS, "classy_state_dict": {
        "base_model": {"model": {"trunk": _pre("_feature_blocks.", TRUNK), "heads": _mlp("0.clf.")}, "meta": {}},
        "loss": VISSL_LOSS, "optimizer": {"state": {}}}}, "VISSL checkpoint", True),
    ("vissl_model_zoo", {"classy_state_dict": {"base_model": {"model": {"trunk": _pre("_feature_blocks.", TRUNK),
                                                                        "heads": {}}}}}, "VISSL checkpoint", False),
    ("vissl_consolidated", {"trunk": _pre("_feature_blocks.", TRUNK), "heads": _mlp("0.")}, "VISSL consolidated trunk", False),
    ("vissl_linear_eval", {"classy_state_dict": {"base_model": {"model": {
        "trunk": _pre("base_model._feature_blocks.", TRUNK), "heads": _mlp("0.channel_bn.")}}}}, "VISSL checkpoint", False),
    ("solo_learn", {"pytorch-lightning_version": "2.1.0", "epoch": 9, "global_step": 900, "state_dict": {
        **_pre("backbone.", TRUNK), **_pre("momentum_backbone.", TRUNK_K), **_mlp("projector."),
        "classifier.weight": torch.randn(10, 512)}}, "solo-learn (Lightning)", True),
    ("lightning", {"pytorch-lightning_version": "2.1.0", "global_step": 5, "state_dict": _pre("model.", Q)},
     "Lightning module", False),
    ("dino", {"epoch": 100, "student": {**_pre("module.backbone.", TRUNK), **_mlp("module.head.mlp.")},
              "teacher": {**_pre("backbone.", TRUNK_K), **_mlp("head.mlp.")}, "optimizer": {"state": {}}},
     "DINO", True),
]


def _assert_weights(model, ref):
    got = model.state_dict()
    for k, v in ref.items():
        if not k.startswith("fc."):
            assert torch.equal(got[k], v), k


@pytest.mark.parametrize("name,content,layout,has_momentum", LAYOUTS, ids=[x[0] for x in LAYOUTS])
def test_layout_is_recognised_and_loads(tmp_path, capsys, name, content, layout, has_momentum):
    path = str(tmp_path / f"{name}.pth")
    torch.save(content, path)
    w = read_trunk(path)
    assert w.layout.startswith(layout) and w.encoder == "online"
    assert infer_resnet_arch(w) == "resnet18"
    m = torchvision.models.resnet18(weights=None)
    capsys.readouterr()
    counts = load_into(m, w, target="resnet18")
    _assert_weights(m, Q)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}: layout {layout}") and "online encoder" in lines[0]
    assert counts["loaded"] == len(TRUNK) and counts["missing"] == 2  # fc.weight, fc.bias stay at init
    assert f"loaded {len(TRUNK)}, missing 2" in lines[0] and f"ignored {counts['ignored']}" in lines[0]
    if has_momentum:
        mk = torchvision.models.resnet18(weights=None)
        wk = read_trunk(path, encoder="momentum")
        assert wk.encoder == "momentum"
        load_into(mk, wk)
        _assert_weights(mk, K)
    else:
        with pytest.raises(TrunkMismatchError, match="no momentum encoder in the file"):
            read_trunk(path, encoder="momentum")


def test_ignored_counts_heads_and_the_other_encoder():
    w = trunk_from_object(LAYOUTS[3][1])  # MoCo: encoder_k trunk + both MLPs + queue + queue_ptr are ignored
    counts = load_into(torchvision.models.resnet18(weights=None), w)
    assert counts["ignored"] == len(TRUNK_K) + 2 * 3 + 2


def test_classy_vision_resnext_names_give_the_same_features():
    """ClassyVision's own ResNe(X)t (PIRL's training code) under torchvision names: the same
    pooled features, for basic (ResNet-18) and bottleneck (ResNet-50) blocks, real classy modules."""
    from classy_vision.models.resnext import ResNet18, ResNet50

    for cls, basic, arch in ((ResNet18, True, "resnet18"), (ResNet50, False, "resnet50")):
        torch.manual_seed(0)
        classy = cls().eval()
        with torch.no_grad():
            for p in classy.parameters():
                p.normal_(0, 0.1)
            for b in classy.buffers():
                if b.dtype.is_floating_point:
                    b.uniform_(0.5, 1.5)
        ckpt = {"classy_state_dict": {"base_model": {**classy.get_classy_state(), "model": {
            "trunk": classy.state_dict(), "heads": {"fc.weight": torch.zeros(3, 2048 if not basic else 512)}}}}}
        w = trunk_from_object(ckpt, source="pirl.torch")
        assert w.layout.startswith("ClassyVision / PIRL") and infer_resnet_arch(w) == arch
        tv = torchvision.models.get_model(arch, weights=None).eval()
        tv.fc = torch.nn.Identity()
        load_into(tv, w)
        x = torch.randn(2, 3, 64, 64)
        with torch.no_grad():
            want = classy(x).mean((2, 3))
            got = tv(x)
        assert (got - want).abs().max().item() <= 1e-5


def test_classy_vision_pre_versioned_block_names():
    """ClassyVision's older ``blocks.S.I._module.`` names map as its own converter maps them."""
    from classy_vision.models.resnext import ResNet18

    classy = ResNet18()
    sd = {k.replace("block0-1.", "1._module.").replace("block0-0.", "0._module."): v for k, v in classy.state_dict().items()}
    assert "blocks.0.1._module.convolutional_block.0.weight" in sd
    w = trunk_from_object({"classy_state_dict": {"base_model": {"model": {"trunk": sd, "heads": {}}}}})
    assert torch.equal(w.state["layer1.1.conv1.weight"], classy.state_dict()["blocks.0.block0-1.convolutional_block.0.weight"])


def test_a_trunk_that_does_not_fit_is_refused_naming_the_first_key(tmp_path):
    path = str(tmp_path / "moco_r18.pth")
    torch.save(LAYOUTS[3][1], path)
    with pytest.raises(TrunkMismatchError, match=r"moco_r18\.pth: the trunk \(MoCo v1/v2 official \(state_dict: module\.encoder_q\.\)\) "
                                                 r"does not fit resnet50: first mismatch: layer1\.0\.conv1\.weight has shape "
                                                 r"\(64, 64, 3, 3\) in the file, \(64, 64, 1, 1\) in resnet50"):
        load_into(torchvision.models.resnet50(weights=None), read_trunk(path), target="resnet50")
    partial = {k: v for k, v in Q.items() if not k.startswith("layer2.1.")}
    with pytest.raises(TrunkMismatchError, match=r"first mismatch: layer2\.1\.conv1\.weight missing from the file"):
        load_into(torchvision.models.resnet18(weights=None), trunk_from_object(partial))
    with pytest.raises(TrunkMismatchError, match="matches none of the torchvision ResNets"):
        infer_resnet_arch(trunk_from_object(partial))


def test_files_without_a_resnet_or_with_two_candidates(tmp_path):
    with pytest.raises(TrunkMismatchError, match="x.pth: no ResNet trunk found"):
        trunk_from_object({"state_dict": {"w": torch.zeros(3)}}, source="x.pth")
    two = {"a": _pre("backbone.", TRUNK), "b": _pre("net.", TRUNK_K)}
    with pytest.raises(TrunkMismatchError, match=r"2 online trunks in the file \(a: backbone\.; b: net\.\)"):
        trunk_from_object(two)
    assert trunk_from_object(two, under="b").layout.endswith("(b: net.)")
    # the same tensors twice (VISSL keeps the loss state in two places) are one trunk
    assert trunk_from_object({"a": _pre("backbone.", TRUNK), "b": _pre("net.", TRUNK)}).layout.endswith("(a: backbone.)")


def test_crafted_file_is_refused_and_trust_pickle_loads_it(tmp_path):
    from vissl_ext_testing import write_crafted

    marker = tmp_path / "PAYLOAD_RAN"
    path = write_crafted(tmp_path / "c.torch", marker)
    with pytest.raises(UnsafeFileError, match="refused"):
        read_trunk(path)
    assert not marker.exists()
    with pytest.raises(TrunkMismatchError):  # the crafted trunk is a stub; the payload ran on load
        load_into(torchvision.models.resnet18(weights=None), read_trunk(path, trust_pickle=True))
    assert marker.exists()
