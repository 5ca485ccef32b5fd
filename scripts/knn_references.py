#!/usr/bin/env python
"""What a kNN probe of object folders gives without a network: the same split and weighted kNN as
the mini study's probe (vissl_ext/study/knn_eval.py), on a colour histogram (8 bins per channel,
square-rooted) and on raw 32 px pixels (centred). A reference for reading the study's kNN column:

    python scripts/knn_references.py /work/runs/mini/data/eval --stride 6
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="object folders, frames in pose order (as the study's kNN evaluation)")
    p.add_argument("--stride", type=int, default=6)
    p.add_argument("--k", type=int, default=20)
    args = p.parse_args(argv)
    import cv2
    import numpy as np
    import torch

    from vissl_ext.downstream.knn import knn_top1
    from vissl_ext.study.knn_eval import object_frames, pose_split

    try:
        objs = object_frames(args.data)
        pose_split(2, args.stride)
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    def read(path):
        im = cv2.imread(path)
        if im is None:
            raise SystemExit(f"error: {path} is not a readable image")
        return im

    describe = {
        "colour histogram": lambda im: np.sqrt(cv2.calcHist([im], [0, 1, 2], None, [8, 8, 8], [0, 256] * 3).ravel()),
        "pixels (32 px)": lambda im: cv2.resize(im, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float32).ravel(),
    }
    for name, fn in describe.items():
        mem, mem_y, qry, qry_y = [], [], [], []
        for label, (_, frames) in enumerate(objs):
            m, q = pose_split(len(frames), args.stride)
            mem += [fn(read(frames[i])) for i in m]
            mem_y += [label] * len(m)
            qry += [fn(read(frames[i])) for i in q]
            qry_y += [label] * len(q)
        fm, fq = torch.tensor(np.stack(mem)), torch.tensor(np.stack(qry))
        if name.startswith("pixels"):
            mean = fm.mean(0)
            fm, fq = fm - mean, fq - mean
        top1 = knn_top1(fm, torch.tensor(mem_y), fq, torch.tensor(qry_y), k=args.k)
        print(f"{name:18s} kNN top-1 {top1:6.2f}  ({len(objs)} objects, {len(qry)} queries)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
