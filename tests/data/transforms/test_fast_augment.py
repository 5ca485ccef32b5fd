"""The OpenCV MoCo v2 augmentation against torchvision's functional ops on real frames, and its
parameter sampling against the host's distributions."""
import os
import random

import numpy as np
import pytest
import torch
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from classy_vision.dataset.transforms import build_transform
from PIL import Image
from scipy import stats

from vissl_ext.data.transforms import fast_augment as fa
from vissl_ext_testing import device_view_params, real_frames

MEAN, STD = fa.IMAGENET_MEAN, fa.IMAGENET_STD


@pytest.fixture(scope="module")
def frames():
    return real_frames()


def tensor(x):
    return torch.from_numpy(np.array(x)).permute(2, 0, 1).float() / 255.0


def as_levels(t):
    return (t * 255.0).round().clamp(0, 255).permute(1, 2, 0).numpy().astype(np.int16)


def assert_close_levels(got, ref, what, max_abs=2, max_mean=1.0):
    d = np.abs(np.asarray(got, np.int16) - np.asarray(ref, np.int16))
    assert d.max() <= max_abs and d.mean() < max_mean, f"{what}: max |diff| {d.max()}, mean {d.mean():.3f} grey levels"


def jitter_only(op, f):
    p = fa.ViewParams(jitter=True, order=(op,))
    setattr(p, fa.JITTER_OPS[op], f)
    return p


TV_OPS = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)


@pytest.mark.parametrize("op,factors", [(0, (0.6, 0.93, 1.4)), (1, (0.6, 1.17, 1.4)), (2, (0.6, 0.81, 1.4)),
                                        (3, (-0.1, -0.03, 0.05, 0.5))])
def test_each_jitter_op_matches_torchvision(frames, op, factors):
    for x in frames:
        for f in factors:
            got = fa.color_jitter(x, jitter_only(op, f))
            assert got.dtype == np.uint8 and got.shape == x.shape
            assert_close_levels(got, as_levels(TV_OPS[op](tensor(x), f)), f"{fa.JITTER_OPS[op]} {f}")


def test_hue_shift_changes_colours_and_wraps_both_ways(frames):
    x = max(frames, key=lambda a: np.ptp(a.astype(int), axis=2).mean())  # the most colourful frame
    # a real shift: visibly away from the input; +0.5 and -0.5 turns are the same hue
    assert np.abs(fa.color_jitter(x, jitter_only(3, 0.1)).astype(int) - x).mean() > 2
    assert_close_levels(fa.color_jitter(x, jitter_only(3, 0.5)), fa.color_jitter(x, jitter_only(3, -0.5)), "+-0.5 turn")


def test_grayscale_blur_flip_normalize_match_torchvision(frames):
    for x in frames:
        assert_close_levels(fa.grayscale(x), as_levels(TF.rgb_to_grayscale(tensor(x), 3)), "grayscale")
        for s in (0.1, 0.7, 1.3, 2.0):
            k = fa.gaussian_kernel_size(s)
            assert_close_levels(fa.gaussian_blur(x, s), as_levels(TF.gaussian_blur(tensor(x), [k, k], [s, s])), f"blur {s}")
            # the kernel's truncation at +-3 sigma is invisible against a wider one
            K = 2 * int(np.ceil(5 * s)) + 1
            assert_close_levels(fa.gaussian_blur(x, s), as_levels(TF.gaussian_blur(tensor(x), [K, K], [s, s])), f"blur {s}")
        assert (fa.hflip(x) == x[:, ::-1]).all()
        ref = TF.normalize(tensor(x), MEAN, STD)
        assert torch.allclose(fa.to_normalized_tensor(x, MEAN, STD), ref, atol=1e-5)
        assert torch.allclose(fa.to_normalized_tensor(x), tensor(x), atol=1e-6)


def reference_view(x, p: fa.ViewParams):
    """torchvision's functional ops, one after the other, with the same parameters."""
    t = tensor(x)
    if p.jitter:
        fs = (p.brightness, p.contrast, p.saturation, p.hue)
        for i in p.order:
            t = TV_OPS[i](t, fs[i])
    if p.gray:
        t = TF.rgb_to_grayscale(t, 3)
    if p.sigma > 0:
        k = fa.gaussian_kernel_size(p.sigma)
        t = TF.gaussian_blur(t, [k, k], [p.sigma, p.sigma])
    if p.flip:
        t = TF.hflip(t)
    return TF.normalize(t, MEAN, STD)


def test_whole_view_matches_torchvision_chain(frames):
    dist = fa.MocoV2Distribution()
    g = torch.Generator().manual_seed(1)
    n_orders = set()
    for x in frames:
        for _ in range(2):
            p = dist.sample(g)
            n_orders.add(p.order)
            got = fa.augment_view(x, p, MEAN, STD)
            # back to grey levels: |diff| * std * 255
            d = ((got - reference_view(x, p)).abs() * torch.tensor(STD).view(3, 1, 1) * 255).numpy()
            assert d.max() <= 2.0 and d.mean() < 1.0, (p, d.max(), d.mean())
    assert len(n_orders) > 3  # the orders really vary (12 views)


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------
def host_objects():
    from vissl.data.ssl_transforms.img_pil_color_distortion import ImgPilColorDistortion
    from vissl.data.ssl_transforms.img_pil_gaussian_blur import ImgPilGaussianBlur

    return ImgPilColorDistortion(0.5), ImgPilGaussianBlur(0.5, 0.1, 2.0)


def test_distribution_read_off_the_host_is_moco_v2():
    cd, blur = host_objects()
    d = fa.MocoV2Distribution.from_host(cd, blur, 0.5)
    assert d == fa.MocoV2Distribution()  # the MoCo v2 numbers of the class docstring
    assert d.brightness == pytest.approx((0.6, 1.4)) and d.hue == pytest.approx((-0.1, 0.1))
    assert (d.jitter_p, d.gray_p, d.blur_p, d.sigma) == (0.8, 0.2, 0.5, (0.1, 2.0))


def fast_samples(n, sampler):
    ps = [sampler() for _ in range(n)]
    jit = [p for p in ps if p.jitter]
    return ps, {k: np.asarray([getattr(p, k) for p in jit]) for k in ("brightness", "contrast", "saturation", "hue")}, jit


def torchvision_samples(n, seed=123):
    """torchvision's own draws: ColorJitter.get_params (the host's jitter) and VISSL's blur sigma."""
    cd, _ = host_objects()
    cj = cd.color_jitter
    torch.manual_seed(seed)
    rows = [T.ColorJitter.get_params(cj.brightness, cj.contrast, cj.saturation, cj.hue) for _ in range(n)]
    r = random.Random(seed)
    return ({k: np.asarray([row[i + 1] for row in rows]) for i, k in enumerate(("brightness", "contrast", "saturation", "hue"))},
            [tuple(row[0].tolist()) for row in rows], np.asarray([r.uniform(0.1, 2.0) for _ in range(n)]))


def check_sampling(ps, factors, jit, n):
    ref, ref_orders, ref_sigma = torchvision_samples(n)
    for k, v in factors.items():
        assert stats.ks_2samp(v, ref[k]).pvalue > 1e-3, k
    # the test has power: a range 0.1 too wide is caught
    assert stats.ks_2samp(factors["brightness"], np.random.default_rng(0).uniform(0.5, 1.5, n)).pvalue < 1e-6
    sig = np.asarray([p.sigma for p in ps if p.sigma > 0])
    assert stats.ks_2samp(sig, ref_sigma).pvalue > 1e-3
    # orders: uniform over the 24 permutations, as torchvision's randperm
    perms = sorted(set(ref_orders))
    assert len(perms) == 24
    counts = np.asarray([sum(p.order == q for p in jit) for q in perms])
    ref_counts = np.asarray([ref_orders.count(q) for q in perms])
    assert counts.sum() == len(jit)
    assert stats.chi2_contingency(np.stack([counts, ref_counts])).pvalue > 1e-3
    for name, p_true in (("jitter", 0.8), ("gray", 0.2), ("flip", 0.5)):
        rate = np.mean([getattr(p, name) for p in ps])
        assert abs(rate - p_true) < 4 * np.sqrt(p_true * (1 - p_true) / len(ps)), (name, rate)
    blur_rate = np.mean([p.sigma > 0 for p in ps])
    assert abs(blur_rate - 0.5) < 4 * np.sqrt(0.25 / len(ps))


def test_cpu_sampling_matches_torchvision_draws():
    n = 20000
    g = torch.Generator().manual_seed(7)
    dist = fa.MocoV2Distribution.from_host(*host_objects(), 0.5)
    ps, factors, jit = fast_samples(n, lambda: dist.sample(g))
    check_sampling(ps, factors, jit, n)


def test_device_sampling_matches_torchvision_draws():
    from vissl_ext.data.transforms.device_augment import DeviceMocoV2Aug

    torch.manual_seed(3)
    aug = DeviceMocoV2Aug(fa.MocoV2Distribution(), None, None)
    ps = []
    for _ in range(2):
        aug(torch.zeros(3000, 3, 8, 8, dtype=torch.uint8))
        ps += device_view_params(aug)
    jit = [p for p in ps if p.jitter]
    factors = {k: np.asarray([getattr(p, k) for p in jit]) for k in ("brightness", "contrast", "saturation", "hue")}
    check_sampling(ps, factors, jit, len(ps))


# --------------------------------------------------------------------------------------------
# registered transforms
# --------------------------------------------------------------------------------------------
def test_registered_transforms_build_from_host_keys(frames):
    img = Image.fromarray(frames[0])
    cd = build_transform({"name": "FastColorDistortion", "strength": 0.5})
    assert cd.dist.brightness == pytest.approx((0.6, 1.4)) and cd.dist.gray_p == 0.2 and cd.dist.blur_p == 0
    out = cd(img)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == frames[0].shape
    blur = build_transform({"name": "FastGaussianBlur", "p": 1.0, "radius_min": 1.0, "radius_max": 1.0})
    assert_close_levels(blur(out), fa.gaussian_blur(out, 1.0), "FastGaussianBlur", max_abs=0)
    assert build_transform({"name": "FastGaussianBlur", "p": 0.0})(out) is out
    moco = build_transform({"name": "FastMocoV2Aug", "strength": 0.5, "flip_p": 0.5,
                            "mean": list(MEAN), "std": list(STD)})
    v = moco(img)
    assert v.dtype == torch.float32 and v.shape == (3, 224, 224)
    u8 = build_transform({"name": "ToUint8Tensor"})(img)
    assert u8.dtype == torch.uint8 and u8.shape == (3, 224, 224) and (u8.permute(1, 2, 0).numpy() == frames[0]).all()
    with pytest.raises(TypeError, match="uint8"):
        cd(frames[0].astype(np.float32))


def test_bad_distributions_are_refused():
    with pytest.raises(ValueError, match="gray_p"):
        fa.MocoV2Distribution(gray_p=1.5).validate()
    with pytest.raises(ValueError, match="hue"):
        fa.MocoV2Distribution(hue=(-0.7, 0.1)).validate()
    with pytest.raises(ValueError, match="sigma"):
        fa.MocoV2Distribution(sigma=(0.0, 2.0)).validate()


def test_fast_crop_takes_torchvisions_crop_window(video_frames_dir):
    from vissl_ext.data.transforms.fast_augment import FastRandomResizedCrop
    from vissl_ext.video.video_io import read_image, read_image_array

    path = sorted(video_frames_dir.glob("frames/*/*.jpg"))[3]
    img = read_image(str(path))
    assert (read_image_array(str(path)) == np.asarray(img)).all()  # same JPEG decoder, same pixels
    tv = T.RandomResizedCrop(64, scale=(0.2, 1.0))
    fast = FastRandomResizedCrop(64, (0.2, 1.0))
    for seed in range(4):
        torch.manual_seed(seed)
        ref = np.asarray(tv(img)).astype(int)
        torch.manual_seed(seed)
        got = fast(img)
        torch.manual_seed(seed)
        assert (fast(np.asarray(img)) == got).all()  # PIL or array in: same output
        # same window; only the resampling filter differs (OpenCV area/bilinear vs PIL's)
        assert np.abs(got.astype(int) - ref).mean() < 1.0, seed
        torch.manual_seed(seed + 100)
        assert np.abs(fast(img).astype(int) - ref).mean() > 3  # another window is far off


def test_unreadable_frame_names_the_file(tmp_path, video_frames_dir):
    from vissl_ext.video.video_io import VideoDecodeError, read_image_array
    from vissl_ext_testing import truncated_copy

    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not a jpeg")
    (tmp_path / "empty.jpg").write_bytes(b"")
    good = sorted(video_frames_dir.glob("frames/*/*.jpg"))[0]
    # OpenCV alone would return a truncated JPEG with a grey bottom half
    truncated = truncated_copy(good, tmp_path / "cut.jpg", 0.6)
    for path in (bad, tmp_path / "empty.jpg", truncated, tmp_path / "missing.jpg"):
        with pytest.raises(VideoDecodeError, match=os.path.basename(str(path))):
            read_image_array(str(path))
    assert read_image_array(str(good)).shape[2] == 3
