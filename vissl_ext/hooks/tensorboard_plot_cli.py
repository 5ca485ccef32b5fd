"""Render the scalars of a run's TensorBoard event files as a PNG (matplotlib), where no browser
or TensorBoard server is at hand: one panel per tag, read with TensorBoard's EventAccumulator.

    python tools/plot_tensorboard.py checkpoints/region_tracker/tb_logs --out tb.png
    python tools/plot_tensorboard.py ck/tb_logs --out tb.png --tags Losses/frame Losses/region Monitor/knn_top1
    python tools/plot_tensorboard.py ck/tb_logs --out tb.png --prefix Losses/ Regions/ Monitor/

Default tags: every scalar whose name starts with one of --prefix (default: Losses/ Regions/
Optimization/ Monitor/, the ones vissl_ext adds), in that order.
"""
import os

from vissl_ext.cli.common import parser, run_main

DEFAULT_PREFIXES = ("Losses/", "Regions/", "Optimization/", "Monitor/")


def parse_args(argv=None):
    p = parser(__doc__)
    p.add_argument("logdir", help="a tb_logs folder (<checkpoint folder>/tb_logs)")
    p.add_argument("--out", required=True, help="PNG to write")
    p.add_argument("--tags", nargs="+", default=None, help="scalar tags to plot, in this order")
    p.add_argument("--prefix", nargs="+", default=list(DEFAULT_PREFIXES), help="plot the tags starting with these")
    p.add_argument("--columns", type=int, default=3)
    p.add_argument("--title", default="")
    return p.parse_args(argv)


def read_scalars(logdir: str) -> dict:
    """{tag: ([steps], [values])} of every scalar in the event files of ``logdir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(logdir, size_guidance={"scalars": 0})
    acc.Reload()
    return {t: ([e.step for e in acc.Scalars(t)], [e.value for e in acc.Scalars(t)]) for t in acc.Tags()["scalars"]}


def run(args) -> dict:
    if not os.path.isdir(args.logdir):
        raise NotADirectoryError(f"{args.logdir} is not a folder (give <checkpoint folder>/tb_logs)")
    scalars = read_scalars(args.logdir)
    if args.tags:
        missing = [t for t in args.tags if t not in scalars]
        if missing:
            raise ValueError(f"{args.logdir} has no scalars {missing}; it has {sorted(scalars)}")
        tags = args.tags
    else:
        tags = [t for p in args.prefix for t in sorted(scalars) if t.startswith(p)]
    if not tags:
        raise ValueError(f"{args.logdir}: no scalar to plot (found {sorted(scalars) or 'none'})")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = max(1, min(args.columns, len(tags)))
    rows = -(-len(tags) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    for ax, tag in zip(axes.flat, tags):
        steps, values = scalars[tag]
        ax.plot(steps, values, marker="o" if len(steps) <= 30 else None, markersize=3)
        ax.set_title(tag, fontsize=10)
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tags):]:
        ax.axis("off")
    if args.title:
        fig.suptitle(args.title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fig.savefig(args.out, dpi=110)
    plt.close(fig)
    print(f"{args.out}: {len(tags)} scalars from {args.logdir}")
    return {"ok": True, "out": args.out, "tags": tags}


def main(argv=None) -> int:
    return run_main(parse_args, run, argv, shown=None)
