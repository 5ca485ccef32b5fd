"""Weighted kNN top-1 of a trunk's pooled features on two labelled image folders (the InstDisc /
solo-learn protocol of vissl_ext.downstream.knn: cosine similarity, k neighbours voting with
weight exp(similarity / T)), on CPU or GPU. Our equivalent of VISSL's
tools/nearest_neighbor_test.py, which calls .cuda() throughout.

    python tools/knn_eval.py checkpoints/model_final_checkpoint_phase199.torch --train data/train --test data/val --out results/knn
    python tools/knn_eval.py r50.safetensors --train data/train --test data/val --out results/knn --device cuda --k 200
    python tools/knn_eval.py random --arch resnet50 --train data/train --test data/val --out results/knn_random

Folders in torchvision's ImageFolder layout (one sub-folder per class); the test classes must be
among the training classes. The checkpoint may be in any layout docs/export.md lists, or
`random` (seeded random init). Images are resized (short side) and centre-cropped to
--image-size and normalised as VISSL's benchmarks do. Writes <out>/knn.json (atomic).
"""
import os

from vissl_ext.cli.common import output_dir, parser, run_main
from vissl_ext.utils.checkpoint_layouts import add_encoder_flag
from vissl_ext.utils.safe_load import add_trust_pickle_flag


def parse_args(argv=None):
    p = parser(__doc__)
    p.add_argument("checkpoint", help="a ResNet checkpoint (any layout of docs/export.md) or 'random'")
    p.add_argument("--train", required=True, help="labelled training images (ImageFolder layout)")
    p.add_argument("--test", required=True, help="labelled test images (ImageFolder layout, same class names)")
    p.add_argument("--out", required=True, help="folder for knn.json")
    p.add_argument("--k", type=int, default=20, help="neighbours (default 20)")
    p.add_argument("--temperature", type=float, default=0.07, help="vote weight exp(sim / T) (default 0.07)")
    p.add_argument("--arch", default="auto", help="torchvision ResNet (default: inferred from the weights; "
                                                  "resnet50 for 'random')")
    p.add_argument("--seed", type=int, default=0, help="seed of the 'random' init (default 0)")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=0, help="data-loader workers")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    add_encoder_flag(p)
    add_trust_pickle_flag(p)
    return p.parse_args(argv)


def image_folder(path: str, size: int, classes=None):
    """A torchvision ImageFolder with VISSL's evaluation transform; ``classes``: the training
    set's class names, so that labels agree across the two folders."""
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    from vissl_ext.invariance.torchvision_features import IMAGENET_MEAN, IMAGENET_STD

    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such image folder")
    tf = T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    try:
        ds = ImageFolder(path, transform=tf)
    except (FileNotFoundError, RuntimeError) as e:  # no class folders, or no images in them
        raise ValueError(f"{path}: not an ImageFolder of labelled images ({e})") from None
    if classes is not None:
        unknown = sorted(set(ds.classes) - set(classes))
        if unknown:
            raise ValueError(f"{path}: classes {unknown[:5]} are not among the training classes")
        index = {c: i for i, c in enumerate(classes)}
        ds.targets = [index[ds.classes[t]] for t in ds.targets]
        ds.samples = [(p, index[ds.classes[t]]) for p, t in ds.samples]
    return ds


def features(model, ds, batch_size: int, workers: int, device: str):
    """[N, D] pooled features and [N] labels of ``ds``, in order."""
    import torch

    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=workers)
    feats, labels = [], []
    with torch.no_grad():
        for x, y in loader:
            feats.append(model(x.to(device)).flatten(1).float())
            labels.append(y.to(device))
    return torch.cat(feats), torch.cat(labels)


def run(args) -> dict:
    import torch

    from vissl_ext.downstream.knn import knn_top1
    from vissl_ext.invariance.torchvision_features import build_torchvision_model, seeded_random_model
    from vissl_ext.utils.atomic_io import write_json_atomic

    if args.k < 1 or args.temperature <= 0:
        raise ValueError(f"--k must be >= 1 and --temperature > 0 (got {args.k}, {args.temperature})")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {args.device}: no CUDA device here")
    train = image_folder(args.train, args.image_size)
    test = image_folder(args.test, args.image_size, classes=train.classes)
    if args.checkpoint == "random":
        arch = "resnet50" if args.arch == "auto" else args.arch
        model = seeded_random_model(arch, args.seed)
    else:
        model, arch = build_torchvision_model(args.arch, args.checkpoint, encoder=args.encoder,
                                              trust_pickle=args.trust_pickle)
    out = output_dir(args.out)
    model.fc = torch.nn.Identity()  # pooled features
    model = model.eval().to(args.device)
    f_train, y_train = features(model, train, args.batch_size, args.workers, args.device)
    f_test, y_test = features(model, test, args.batch_size, args.workers, args.device)
    top1 = knn_top1(f_train, y_train, f_test, y_test, k=args.k, temperature=args.temperature)
    result = {"ok": True, "top1": top1, "k": args.k, "temperature": args.temperature, "checkpoint": args.checkpoint,
              "arch": arch, "encoder": args.encoder, "device": args.device, "train_images": len(train),
              "test_images": len(test), "classes": len(train.classes), "image_size": args.image_size}
    write_json_atomic(os.path.join(out, "knn.json"), result, indent=1)
    return result


def main(argv=None) -> int:
    return run_main(parse_args, run, argv)
