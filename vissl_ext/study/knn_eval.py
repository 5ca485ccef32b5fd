"""The kNN probe of the mini study: object identity from held-back turntable objects, one trunk.

    python -m vissl_ext.study.knn_eval --checkpoint model.torch --data /data/turntable/eval \
        --config pretrain/mini/moco_video_baseline --out knn_out/

``--data`` holds one folder of frames per object, in pose order (names numbered as
tools/extract_frames.py writes them; videos: extract their frames first). Poses at positions
p % stride == 0 form the memory bank, poses at p % stride == stride // 2 the queries: every query
is half a stride of turn away from its object's nearest memory view, so the probe asks for
identity across viewpoint, not for a near-duplicate frame. Weighted kNN (vissl_ext.downstream.knn:
k 20, temperature 0.07, cosine) on the trunk's pooled res5 features. Writes <out>/knn.json.
"""
import os
from typing import List, Sequence, Tuple

from vissl_ext.cli.common import output_dir, parser, run_main


def pose_split(num_poses: int, stride: int) -> Tuple[List[int], List[int]]:
    """(memory positions, query positions) of one object's poses."""
    if stride < 2:
        raise ValueError(f"kNN pose stride must be >= 2 (got {stride})")
    return ([p for p in range(num_poses) if p % stride == 0],
            [p for p in range(num_poses) if p % stride == stride // 2])


def object_frames(root: str) -> List[Tuple[str, List[str]]]:
    """(object name, frame paths in pose order) of every object folder under ``root``."""
    from vissl_ext.video.extraction import find_inputs, frame_folder_entry, video_id

    if not os.path.isdir(root):
        raise FileNotFoundError(f"kNN data {root} is not a folder")
    out = []
    for path, base in find_inputs([root]):
        if not os.path.isdir(path):
            raise ValueError(f"kNN data {root}: {path} is a video; extract its frames first (tools/extract_frames.py)")
        e = frame_folder_entry(path, video_id(path, base))
        out.append((e.id, [e.frame_path(i) for i in range(e.num_frames)]))
    if len(out) < 2:
        raise ValueError(f"kNN data {root}: needs at least 2 object folders of frames, found {len(out)}")
    return out


def load_trunk(checkpoint: str, config: str, overrides: Sequence[str] = ()):
    """The trunk of ``config`` with the checkpoint's trunk weights (all keys must fit)."""
    from vissl_ext.tracking.trunk import build_trunk, compose_model_config
    from vissl_ext.utils.checkpoint_layouts import read_trunk

    trunk = build_trunk(compose_model_config(config, overrides))
    state = read_trunk(checkpoint, flag_hint=False).vissl_state()
    missing, unexpected = trunk.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{checkpoint} does not fit the trunk of {config}: {len(missing)} missing (e.g. {missing[:3]}), "
                         f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    return trunk.eval()


def features(trunk, paths: Sequence[str], size: int, feature: str = "res5avg", batch: int = 128):
    """[N, D] features of the images (resized to size x size, ImageNet normalisation as the RIS configs)."""
    import torch
    from PIL import Image
    from torchvision import transforms as T

    tf = T.Compose([T.Resize((size, size)), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    out = []
    with torch.no_grad():
        for i in range(0, len(paths), batch):
            x = torch.stack([tf(Image.open(p).convert("RGB")) for p in paths[i:i + batch]])
            out.append(trunk(x, [feature])[0].flatten(1))
    return torch.cat(out)


def knn_probe(trunk, root: str, stride: int = 6, size: int = 32, k: int = 20, temperature: float = 0.07) -> dict:
    from vissl_ext.downstream.knn import knn_top1

    objs = object_frames(root)
    mem, qry, mem_y, qry_y = [], [], [], []
    for label, (_, frames) in enumerate(objs):
        m, q = pose_split(len(frames), stride)
        if not q:
            raise ValueError(f"kNN data {root}: object {objs[label][0]} has {len(frames)} poses, too few for stride {stride}")
        mem += [frames[p] for p in m]
        qry += [frames[p] for p in q]
        mem_y += [label] * len(m)
        qry_y += [label] * len(q)
    fm, fq = features(trunk, mem, size), features(trunk, qry, size)
    top1 = knn_top1(fm, mem_y, fq, qry_y, k=k, temperature=temperature)
    return {"metrics": {"top-1": top1}, "objects": len(objs), "memory": len(mem), "queries": len(qry),
            "stride": stride, "k": k, "temperature": temperature, "size": size}


def parse_args(argv=None):
    p = parser(__doc__)
    p.add_argument("--checkpoint", required=True, help="VISSL checkpoint (or trunk state dict)")
    p.add_argument("--data", required=True, help="folder of object folders, frames in pose order")
    p.add_argument("--config", required=True, help="VISSL config whose MODEL builds the trunk")
    p.add_argument("--override", action="append", default=[], help="VISSL override for --config (repeatable)")
    p.add_argument("--out", required=True, help="output folder (knn.json)")
    p.add_argument("--stride", type=int, default=6, help="memory poses p %% stride == 0, queries p %% stride == stride//2")
    p.add_argument("--size", type=int, default=32, help="frames are resized to size x size (default 32)")
    p.add_argument("--k", type=int, default=20)
    p.add_argument("--temperature", type=float, default=0.07)
    return p.parse_args(argv)


def run(args) -> dict:
    output_dir(args.out)
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f"checkpoint {args.checkpoint} does not exist")
    pose_split(2, args.stride)  # a bad stride fails before the trunk is built
    res = knn_probe(load_trunk(args.checkpoint, args.config, args.override), args.data, args.stride, args.size,
                    args.k, args.temperature)
    from vissl_ext.utils.atomic_io import write_json_atomic

    write_json_atomic(os.path.join(args.out, "knn.json"), res, indent=1)
    return res


def main(argv=None) -> int:
    return run_main(parse_args, run, argv, user_errors=(ValueError, FileNotFoundError))


if __name__ == "__main__":
    import sys

    sys.exit(main())
