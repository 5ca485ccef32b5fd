"""Export a trained ResNet trunk for use elsewhere: torchvision, timm or safetensors.

    python tools/export_trunk.py checkpoints/model_final_checkpoint_phase199.torch --format torchvision --out r50.pth
    python tools/export_trunk.py checkpoints/model_final_checkpoint_phase199.torch --format safetensors --out r50.safetensors
    python tools/export_trunk.py checkpoints/model_final_checkpoint_phase199.torch --format timm --encoder momentum --out r50_key.pth

What the file holds: the ResNet trunk only (conv1 ... layer4, BN statistics included), in
torchvision's names, which timm's ResNets share. Dropped: every head of the model (MoCo's MLP
projection head, the Region Tracker's dense region head, linear-probe and SVM heads), the
classifier `fc`, the loss state (queues), the optimizer and the other encoder. Loading:

    m = torchvision.models.resnet50(); m.fc = torch.nn.Identity(); m.load_state_dict(torch.load("r50.pth"))
    m = timm.create_model("resnet50", pretrained=False, num_classes=0, checkpoint_path="r50.pth")
    m.load_state_dict(safetensors.torch.load_file("r50.safetensors"))    # torchvision names, as above

(or keep `fc` and load with strict=False: only fc.weight and fc.bias are missing). Before
writing, the export loads the weights with strict=True into the target library's model and
compares its pooled features with the VISSL trunk's on a fixed batch (max abs difference <= 1e-5,
printed). safetensors holds tensors only, no code: the way to hand weights to someone. Its
metadata: source checkpoint name and sha256, config, iteration, encoder, layout, architecture.
The checkpoint may be in any layout docs/export.md lists, not only ours.
"""
from vissl_ext.cli.common import parser, run_main
from vissl_ext.utils.checkpoint_layouts import add_encoder_flag
from vissl_ext.utils.safe_load import add_trust_pickle_flag


def parse_args(argv=None):
    p = parser(__doc__)
    p.add_argument("checkpoint", help="VISSL checkpoint (model_final_checkpoint_phase*.torch) or any layout docs/export.md lists")
    p.add_argument("--format", required=True, choices=["torchvision", "timm", "safetensors"])
    p.add_argument("--out", required=True, help="the file to write (.pth for torchvision/timm, .safetensors); "
                                                "written atomically, nothing else is written")
    add_encoder_flag(p)
    p.add_argument("--config-name", default="",
                   help="config name for the metadata (default: what the launcher recorded beside the checkpoint)")
    add_trust_pickle_flag(p)
    return p.parse_args(argv)


def run(args) -> dict:
    from vissl_ext.downstream.export import export_trunk

    return export_trunk(args.checkpoint, args.format, args.out, encoder=args.encoder, config_name=args.config_name,
                        trust_pickle=args.trust_pickle)


def main(argv=None) -> int:
    return run_main(parse_args, run, argv)
