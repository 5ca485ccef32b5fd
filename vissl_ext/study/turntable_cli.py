"""Generate a procedural turntable set: one folder of frames per object, in pose order.

    python tools/make_turntable.py /data/turntable/train --objects 300 --poses 24 --seed 0
    python tools/make_turntable.py /data/turntable/eval --objects 40 --poses 24 --seed 1   # held-back objects

Object identity is the class; a different --seed gives different objects. The folders feed the
video data sources (DATA_PATHS=[<folder>]), tools/build_ris_trajectories.py folders (one
trajectory and class per object) and the mini study (configs/study/mini_paper.yaml).
Rerunning keeps complete object folders (resumable).
"""
from vissl_ext.cli.common import output_dir, parser, run_main
from vissl_ext.study.turntable import write_turntable


def parse_args(argv=None):
    p = parser(__doc__)
    p.add_argument("out", help="output folder (<out>/<object>/<pose>.png)")
    p.add_argument("--objects", type=int, default=100, help="number of objects (default 100)")
    p.add_argument("--poses", type=int, default=36, help="frames per full turn (default 36)")
    p.add_argument("--size", type=int, default=64, help="frame side in pixels (default 64)")
    p.add_argument("--seed", type=int, default=0, help="object set: a different seed, different objects (default 0)")
    p.add_argument("--start", type=int, default=0, help="index of the first object (default 0)")
    return p.parse_args(argv)


def run(args) -> dict:
    output_dir(args.out)
    folders = write_turntable(args.out, args.objects, args.poses, args.size, args.seed, args.start)
    return {"out": args.out, "objects": len(folders), "poses": args.poses, "size": args.size, "seed": args.seed}


def main(argv=None) -> int:
    return run_main(parse_args, run, argv)
