"""Cost of the online monitor (config.MONITOR) at its default frequency (every epoch) on tiny CPU
runs: the same pretraining run (pretrain/tiny/frame_temporal_cpu, real frames of ../shared/data)
without and with the monitor (kNN on 20 + 20 images, RIS on 40, DAVIS-2016 frames, 64 px), and
the monitor's share of the monitored run's own time (same load, so less noisy than the
difference of two runs on a shared machine).

    python benchmarks/bench_monitor.py                        # 2 epochs x 32 iterations
    python benchmarks/bench_monitor.py --iterations-per-epoch 64 --epochs 2

Also prints the cost per evaluated image and per trained frame pair, and the overhead they give
for a setup of N evaluated images per epoch of P training pairs (--paper-pairs, --paper-images).
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tests"))


def run(work, name, iterations_per_epoch, epochs, monitor):
    ck = os.path.join(work, name)
    args = ["config=pretrain/tiny/frame_temporal_cpu", f"config.DATA.TRAIN.DATA_PATHS=[{work}/frames/manifest.json]",
            f"config.CHECKPOINT.DIR={ck}", f"config.DATA.TRAIN.DATA_LIMIT={4 * iterations_per_epoch}",
            f"config.OPTIMIZER.num_epochs={epochs}", f"config.CHECKPOINT.CHECKPOINT_FREQUENCY={epochs}",
            f"config.LOG_FREQUENCY={iterations_per_epoch}"]
    if monitor:
        t, v, m = monitor
        args += ["config.MONITOR.ENABLED=true", f"config.MONITOR.KNN.TRAIN={t}", f"config.MONITOR.KNN.VAL={v}",
                 f"config.MONITOR.RIS.MANIFEST={m}", "config.MONITOR.IMAGE_SIZE=64"]
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, os.path.join(REPO, "tools", "run_distributed_engines.py"), *args],
                       capture_output=True, text=True, cwd=work)
    wall = time.perf_counter() - t0
    if p.returncode:
        sys.exit(p.stdout[-3000:] + p.stderr[-3000:])
    m = re.search(r"trained (\d+) iterations in (?:(\d+):)?(\d+):(\d\d)", p.stdout)
    h, mi, s = int(m.group(2) or 0), int(m.group(3)), int(m.group(4))
    secs = 0.0
    evals = 0
    if monitor:
        recs = [json.loads(x) for x in open(os.path.join(ck, "monitor.jsonl"))]
        secs = sum(r["seconds"] for r in recs if r["metric"] in ("knn_top1", "ris_top10"))  # one record per metric group
        evals = len({r["iteration"] for r in recs})
        per_eval = [round(sum(r["seconds"] for r in recs if r["iteration"] == it and r["metric"] in ("knn_top1", "ris_top10")), 2)
                    for it in sorted({r["iteration"] for r in recs})]
    return {"train_s": 3600 * h + 60 * mi + s, "wall_s": wall, "monitor_s": secs, "evaluations": evals,
            "iterations": int(m.group(1)), "per_eval": per_eval if monitor else []}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations-per-epoch", type=int, default=32)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--work", default="", help="working folder (default: a temporary one)")
    ap.add_argument("--paper-pairs", type=float, default=1.28e6, help="training pairs per epoch of the setup to project")
    ap.add_argument("--paper-images", type=float, default=20000, help="images the monitor encodes per evaluation there")
    a = ap.parse_args(argv)
    from vissl_ext_testing import extract, monitor_sets, shared_path

    work = a.work or tempfile.mkdtemp(prefix="bench_monitor_")
    if not os.path.isfile(os.path.join(work, "frames", "manifest.json")):
        extract([shared_path("video_pysot_bag", "bag.avi"), shared_path("video_opencv", "cup.mp4")],
                os.path.join(work, "frames"), stride=2)
    sets = monitor_sets(os.path.join(work, "sets"))
    images = 80
    off = run(work, "off", a.iterations_per_epoch, a.epochs, None)
    on = run(work, "on", a.iterations_per_epoch, a.epochs, sets)
    load = os.getloadavg()
    pairs = 4 * off["iterations"]
    per_pair = off["train_s"] / pairs
    per_image = on["monitor_s"] / (images * max(on["evaluations"], 1))
    share = on["monitor_s"] / max(on["train_s"] - on["monitor_s"], 1e-9)
    print(f"tiny CPU runs, {a.epochs} epochs x {a.iterations_per_epoch} iterations (batch 4, 64 px), monitor every "
          f"epoch on {images} images; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} cores")
    print(f"training without the monitor: {off['train_s']} s; with it: {on['train_s']} s "
          f"(difference {100 * (on['train_s'] - off['train_s']) / off['train_s']:+.1f}%)")
    print(f"monitor in the monitored run: {on['evaluations']} evaluations, {on['monitor_s']:.1f} s = "
          f"{100 * share:.1f}% of its training time; seconds per evaluation {on['per_eval']} (the first decodes the "
          f"sets, later ones reuse the kept views)")
    print(f"cost: {per_image * 1000:.1f} ms per evaluated image, {per_pair * 1000:.1f} ms per trained pair "
          f"(ratio {per_pair / per_image:.1f})")
    proj = a.paper_images * per_image / (a.paper_pairs * per_pair)
    print(f"projected: {a.paper_images:.0f} images per evaluation, every epoch of {a.paper_pairs:.3g} pairs: "
          f"{100 * proj:.2f}% of training time (same cost ratio)")


if __name__ == "__main__":
    main()
