#!/usr/bin/env python
"""One training step of temporal_contrastive_loss on a GPU under
torch.cuda.set_sync_debug_mode("warn"): every synchronising CUDA call of the step, by call site
(VISSL's model, loss and TemporalContrastiveHook; one process, so no shuffle-BN).

    python scripts/device_sync_check.py                                    # pretrain/region_tracker, batch 32, 224 px
    python scripts/device_sync_check.py --config pretrain/tiny/region_tracker_cpu --batch 4 --size 64

Refuses with one error line (exit 2) where CUDA is not available.
"""
import argparse
import os
import sys
import warnings

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "benchmarks")]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="pretrain/region_tracker")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--regions", type=int, default=4, help="region pairs per image")
    a = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("error: no CUDA device here (torch.cuda.is_available() is False): run this check where a GPU is; "
              "benchmarks/bench_comm_sync.py counts the host reads on CPU", file=sys.stderr)
        return 2
    from bench_comm_sync import build, region_batch, train_step

    from vissl_ext.utils.probes import count_host_syncs

    task, hook, opt = build(a.config, "cuda")
    sample = region_batch(a.batch, a.size, a.regions, "cuda")
    train_step(task, hook, opt, sample)  # builds the momentum encoder, reads the queue pointers once
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught, count_host_syncs() as reads:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            train_step(task, hook, opt, sample)
            torch.cuda.synchronize()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [w for w in caught if "synchronizing" in str(w.message)]
    print(f"{a.config}, batch {a.batch}, {a.size} px, {torch.cuda.get_device_name()}: {len(syncs)} synchronizing "
          f"CUDA calls in one step")
    for w in syncs:
        print(f"  {os.path.relpath(w.filename, REPO) if w.filename.startswith(REPO) else w.filename}:{w.lineno}")
    print("host reads of tensor values by call site:")
    for site, n in sorted(reads.by_site().items()):
        print(f"  {n:>3}  {site}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
