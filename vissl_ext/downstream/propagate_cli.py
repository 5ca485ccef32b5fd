"""Semi-supervised video object segmentation by label propagation on DAVIS (J&F), the way video
representation learners are judged (CRW, Jabri et al. 2020; VFS, Xu & Wang 2021): the first
frame's annotation is carried through each sequence by the affinities of a trunk's res4 features
(vissl_ext.downstream.label_propagation), then scored with the DAVIS 2017 J and F
(vissl_ext.downstream.davis_metrics).

    python tools/propagate_labels.py data/DAVIS --out results/davis --checkpoint checkpoints/model_final_checkpoint_phase199.torch
    python tools/propagate_labels.py data/DAVIS --out results/davis_random --random-init --seed 0 --short-side 240
    python tools/propagate_labels.py data/DAVIS --out results/davis --checkpoint r50.pth --stride 16 --sequences car-shadow --device cuda

The root is in the DAVIS layout (JPEGImages/480p/<seq>/*.jpg, Annotations/480p/<seq>/*.png;
palette PNGs as DAVIS 2017 or binary masks as DAVIS 2016). Features: the output of torchvision's
layer3 (res4) of a ResNet, at stride 8 (layer3 dilated: replace_stride_with_dilation=[False,
True, False], the CRW/VFS setting; ResNet-18/34: stride 1 in layer3's first block) or 16 (plain). Frames are ImageNet-normalised, optionally
resized to --short-side. Writes <out>/<seq>/<frame>.png (palette masks at the frame size),
<out>/summary.json (atomic: J_mean, F_mean, JF_mean, per sequence, seconds per frame, share of
time outside the trunk) and <out>/overlay.png (the first sequence). See docs/davis.md.
"""
import os
import time

from vissl_ext.cli.common import output_dir, parser, run_main
from vissl_ext.utils.checkpoint_layouts import add_encoder_flag
from vissl_ext.utils.safe_load import add_trust_pickle_flag


def parse_args(argv=None):
    p = parser(__doc__)
    p.add_argument("root", help="a DAVIS-layout folder (JPEGImages/480p, Annotations/480p)")
    p.add_argument("--out", required=True, help="folder for the masks, summary.json and overlay.png")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", help="a ResNet checkpoint in any layout docs/export.md lists")
    model.add_argument("--random-init", action="store_true", help="a randomly initialised trunk (seeded by --seed)")
    p.add_argument("--seed", type=int, default=0, help="seed of --random-init (default 0)")
    p.add_argument("--arch", default="auto",
                   help="torchvision ResNet (default: inferred from the checkpoint; resnet50 for --random-init)")
    p.add_argument("--stride", type=int, choices=[8, 16], default=8,
                   help="feature stride of res4 (torchvision layer3): 8 dilates layer3 "
                        "(replace_stride_with_dilation=[False, True, False]; ResNet-18/34, whose blocks cannot "
                        "dilate, take stride 1 in layer3's first block as CRW does), 16 is plain (default 8)")
    p.add_argument("--context", type=int, default=20,
                   help="previous frames in the context besides the first (default 20, CRW/VFS)")
    p.add_argument("--topk", type=int, default=10, help="affinities kept per cell (default 10, CRW/VFS)")
    p.add_argument("--temperature", type=float, default=0.07, help="affinity temperature (default 0.07, CRW/VFS)")
    p.add_argument("--radius", type=int, default=12, help="spatial radius in feature cells (default 12, CRW/VFS)")
    p.add_argument("--tile", type=int, default=8,
                   help="target cells per block side in the affinities: speed, the result only by float rounding "
                        "(default 8, the fastest on CPU in benchmarks/bench_propagation.py)")
    p.add_argument("--sequences", nargs="+", default=None, help="sequence names (default: all under the root)")
    p.add_argument("--max-frames", type=int, default=None, help="only the first N frames of each sequence")
    p.add_argument("--short-side", type=int, default=None,
                   help="resize frames to this short side before the trunk (default: as stored, 480 for 480p)")
    p.add_argument("--batch-size", type=int, default=8, help="frames per trunk forward (default 8)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    add_encoder_flag(p)
    add_trust_pickle_flag(p)
    return p.parse_args(argv)


def build_trunk(args):
    """The torchvision ResNet up to layer3 (res4) at --stride, with the checkpoint's or seeded
    random weights; returns (module, arch)."""
    import torch
    import torchvision.models as tvm

    from vissl_ext.utils.checkpoint_layouts import infer_resnet_arch, load_into, read_trunk

    found = None
    if args.checkpoint:
        found = read_trunk(args.checkpoint, encoder=args.encoder, trust_pickle=args.trust_pickle)
    arch = args.arch if args.arch != "auto" else (infer_resnet_arch(found) if found else "resnet50")
    if not arch.startswith(("resnet", "resnext", "wide_resnet")) or arch not in tvm.list_models():
        raise ValueError(f"--arch {arch!r}: not a torchvision ResNet (e.g. resnet50, resnet18)")
    bottleneck = arch not in ("resnet18", "resnet34")
    dilate = {"replace_stride_with_dilation": [False, True, False]} if args.stride == 8 and bottleneck else {}
    with torch.random.fork_rng(devices=[]):  # the same random trunk in every run, caller's RNG untouched
        torch.manual_seed(args.seed)
        model = tvm.get_model(arch, weights=None, **dilate)
    if args.stride == 8 and not bottleneck:
        # torchvision's BasicBlock cannot dilate: layer3's first block keeps stride 1 instead (CRW's ResNet-18)
        model.layer3[0].conv1.stride = model.layer3[0].downsample[0].stride = (1, 1)
    if found:
        load_into(model, found, target=arch)
    trunk = torch.nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1, model.layer2,
                                model.layer3)
    return trunk.eval().to(args.device), arch


def _load_frames(paths, short_side):
    """[T, H, W, 3] uint8 frames as stored, and the [T, 3, h, w] normalised trunk input."""
    import numpy as np
    import torch
    from PIL import Image

    from vissl_ext.invariance.torchvision_features import IMAGENET_MEAN, IMAGENET_STD

    frames = []
    for p in paths:
        with Image.open(p) as im:
            frames.append(np.asarray(im.convert("RGB")))
    x = torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255
    if short_side:
        h, w = x.shape[2:]
        s = short_side / min(h, w)
        x = torch.nn.functional.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear",
                                            align_corners=False, antialias=True)
    mean, std = torch.tensor(IMAGENET_MEAN)[:, None, None], torch.tensor(IMAGENET_STD)[:, None, None]
    return frames, (x - mean) / std


def run(args) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from vissl_ext.downstream import davis_data as dd
    from vissl_ext.downstream.davis_metrics import score_sequence, summarise
    from vissl_ext.downstream.label_propagation import propagate_labels
    from vissl_ext.utils.atomic_io import write_json_atomic

    if args.topk < 1 or args.temperature <= 0 or args.radius < 0 or args.context < 0:
        raise ValueError(f"need --topk >= 1, --temperature > 0, --radius >= 0, --context >= 0 (got {args.topk}, "
                         f"{args.temperature}, {args.radius}, {args.context})")
    if (args.max_frames is not None and args.max_frames < 3) or (args.short_side is not None and args.short_side < 32):
        # DAVIS scores the frames between the first (given) and the last: 3 frames score one
        raise ValueError(f"--max-frames must be >= 3 and --short-side >= 32 (got {args.max_frames}, {args.short_side})")
    if args.batch_size < 1 or args.tile < 1:
        raise ValueError(f"--batch-size and --tile must be >= 1, got {args.batch_size}, {args.tile}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: no CUDA device here")
    available = dd.sequences(args.root)
    seqs = args.sequences or available
    unknown = [s for s in seqs if s not in available]
    if unknown:
        raise ValueError(f"--sequences: {unknown} not under {args.root}/JPEGImages/480p (have {available[:10]})")
    # every sequence's frames and first annotation are checked before the trunk is built or anything written
    plans = {}
    for seq in seqs:
        paths = dd.frame_paths(args.root, seq)[:args.max_frames]
        first = dd.annotation_path(args.root, seq, paths[0])
        if not os.path.isfile(first):
            raise FileNotFoundError(f"{first}: no annotation of the first frame of {seq}")
        plans[seq] = paths
    trunk, arch = build_trunk(args)
    out = output_dir(args.out)

    per_seq, timing, n_frames, t_trunk, t_all = {}, {}, 0, 0.0, 0.0
    for si, (seq, paths) in enumerate(plans.items()):
        t0 = time.perf_counter()
        frames, x = _load_frames(paths, args.short_side)
        first = dd.read_labels(dd.annotation_path(args.root, seq, paths[0]))
        height, width = frames[0].shape[:2]
        if first.shape != (height, width):
            raise ValueError(f"{seq}: first annotation is {first.shape}, frames are {(height, width)}")
        tt = time.perf_counter()
        with torch.no_grad():
            feats = torch.cat([trunk(x[i:i + args.batch_size].to(args.device)) for i in range(0, len(x), args.batch_size)])
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        trunk_s = time.perf_counter() - tt
        ids = np.unique(first)  # background 0 and the objects, in order; channel k -> object ids[k]
        onehot = torch.from_numpy(first[None] == ids[:, None, None]).float()[None]  # [1, K, H, W]
        small = F.interpolate(onehot, size=feats.shape[2:], mode="area")[0].to(feats.device)
        with torch.no_grad():
            probs = propagate_labels(feats, small, context=args.context, topk=args.topk,
                                     temperature=args.temperature, radius=args.radius, tile=args.tile)
        os.makedirs(os.path.join(out, seq), exist_ok=True)
        preds = [first]
        for t in range(1, len(paths)):
            up = F.interpolate(probs[t:t + 1].float().cpu(), size=(height, width), mode="bilinear", align_corners=False)
            preds.append(ids[up[0].argmax(0).numpy()])
        for p, lab in zip(paths, preds):
            dd.write_labels(os.path.join(out, seq, os.path.splitext(os.path.basename(p))[0] + ".png"), lab)
        seconds = time.perf_counter() - t0
        t_trunk, t_all, n_frames = t_trunk + trunk_s, t_all + seconds, n_frames + len(paths)
        timing[seq] = {"frames": len(paths), "seconds_per_frame": seconds / len(paths)}
        gts = [dd.annotation_path(args.root, seq, p) for p in paths]
        if all(os.path.isfile(g) for g in gts):
            per_seq[seq] = score_sequence([dd.read_labels(g) for g in gts], preds, objects=[int(o) for o in ids if o])
        if si == 0:
            pick = np.linspace(0, len(paths) - 1, min(6, len(paths))).round().astype(int)
            dd.overlay_strip([frames[i] for i in pick], [preds[i] for i in pick], os.path.join(out, "overlay.png"))
    scores = summarise(per_seq) if per_seq else {"J_mean": None, "F_mean": None, "JF_mean": None, "sequences": {}}
    summary = {"ok": True, **scores, "scored_sequences": sorted(per_seq), "timing": timing,
               "seconds_per_frame": t_all / n_frames, "share_outside_trunk": 1 - t_trunk / t_all,
               "frames": n_frames, "arch": arch, "stride": args.stride, "layer": "res4 (torchvision layer3)",
               "checkpoint": args.checkpoint, "random_init": args.random_init, "seed": args.seed,
               "encoder": args.encoder, "context": args.context, "topk": args.topk, "temperature": args.temperature,
               "radius": args.radius, "tile": args.tile, "short_side": args.short_side, "max_frames": args.max_frames,
               "device": args.device, "torch_threads": torch.get_num_threads()}
    write_json_atomic(os.path.join(out, "summary.json"), summary, indent=1)
    return summary


def main(argv=None) -> int:
    return run_main(parse_args, run, argv)
