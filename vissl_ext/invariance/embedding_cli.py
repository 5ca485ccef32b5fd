"""Draw a model's features on a RIS manifest in 2-D (t-SNE), coloured by class, each trajectory
joined by a line: what RIS measures, for the eye (an invariant representation keeps a
trajectory tight).

    python tools/draw_embedding.py --manifest ris/aloi_viewpoint.json --checkpoint model_final_checkpoint_phase199.torch \
        --name "Region Tracker" --out pictures/
    python tools/draw_embedding.py --manifest ris/aloi_viewpoint.json --features results/features_sup__aloi_viewpoint_avgpool.npy \
        --name sup --out pictures/
    python tools/draw_embedding.py --manifest ris/aloi_viewpoint.json --checkpoint random --name random --out pictures/ --method umap

Features: --features (a .npy/.npz or VISSL extract folder in manifest order, as compute_ris
reads) or --checkpoint (any layout docs/export.md lists, or `random`: the pooled output of a
torchvision ResNet, written to <out>/features_<name>.npy). Writes <out>/embedding_<name>.png.
--method umap needs umap-learn (optional).
"""
import os

from vissl_ext.cli.common import output_dir, parser, run_main
from vissl_ext.utils.checkpoint_layouts import add_encoder_flag
from vissl_ext.utils.safe_load import add_trust_pickle_flag


def parse_args(argv=None):
    p = parser(__doc__)
    p.add_argument("--manifest", required=True, help="RIS manifest (images, trajectories, classes)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--features", help="features in manifest order (.npy/.npz or a VISSL extract folder)")
    src.add_argument("--checkpoint", help="a ResNet checkpoint in any layout of docs/export.md, or 'random'")
    p.add_argument("--name", required=True, help="model name: picture title and file name")
    p.add_argument("--out", required=True, help="folder of the picture")
    p.add_argument("--method", choices=["tsne", "umap"], default="tsne")
    p.add_argument("--seed", type=int, default=0, help="seed of the embedding (and of the 'random' init)")
    p.add_argument("--layer", default=None, help="layer of a VISSL extract folder (default: the only one)")
    p.add_argument("--device", default="cpu")
    add_encoder_flag(p)
    add_trust_pickle_flag(p)
    return p.parse_args(argv)


def run(args) -> dict:
    from vissl_ext.invariance.embedding import embed_2d, plot_embedding, save_figure
    from vissl_ext.invariance.features_io import load_features
    from vissl_ext.invariance.manifest import load_ris_manifest

    m = load_ris_manifest(args.manifest)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in args.name)
    if args.features:
        feats = load_features(args.features, num_images=len(m.entries), layer=args.layer)
        out = output_dir(args.out)
    else:
        from vissl_ext.invariance.torchvision_features import (build_torchvision_model, extract_torchvision_features,
                                                               seeded_random_model)

        if args.checkpoint == "random":
            model = seeded_random_model("resnet50", args.seed)
        else:
            model = build_torchvision_model("auto", args.checkpoint, encoder=args.encoder, trust_pickle=args.trust_pickle)[0]
        out = output_dir(args.out)
        feats = extract_torchvision_features(model, m, os.path.join(out, f"features_{safe}.npy"), device=args.device,
                                             workers=0, progress=False)
    coords = embed_2d(feats, args.method, args.seed)
    title = f"{args.name}: {m.set} ({m.invariance}), {args.method}, {len(m.entries)} images"
    fig = plot_embedding(coords, m.trajectories, m.classes, title)
    path = os.path.join(out, f"embedding_{safe}.png")
    save_figure(fig, path)
    return {"ok": True, "picture": path, "images": len(m.entries), "trajectories": len(set(m.trajectories)),
            "classes": len(set(m.classes)), "method": args.method}


def main(argv=None) -> int:
    return run_main(parse_args, run, argv)
