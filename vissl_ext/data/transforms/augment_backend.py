"""``config.DATA.TRAIN.AUGMENT_BACKEND``: where MoCo v2's photometric augmentation runs.

- ``host`` (default): the transform list as written (VISSL's PIL ``ImgPilColorDistortion``,
  ``ImgPilGaussianBlur``, torchvision flip / ToTensor / Normalize).
- ``fast``: the photometric tail of the list is replaced by one ``FastMocoV2Aug`` (OpenCV on
  uint8 arrays, in the data-loader workers) with the same parameters.
- ``device``: the tail is replaced by ``ToUint8Tensor``: workers only decode and crop; the
  parameters go to ``config.DATA.TRAIN.DEVICE_AUGMENT`` and a hook runs the augmentation batched
  on the training device (kornia) for the query and key views.

The tail is the MoCo v2 / SimCLR pattern of the host configs, at the top level of the list or
inside ``ImageOnly`` (region pairs)::

    ImgPilColorDistortion, [ImgPilGaussianBlur], [RandomHorizontalFlip], ToTensor, [Normalize]

Its parameters are taken from those entries, so the three backends draw from the same
distributions. A torchvision ``RandomResizedCrop`` before it becomes ``FastRandomResizedCrop``
(same crop sampling, OpenCV resize of the uint8 array: the PIL resize costs more than the decode)
unless a PIL-only transform follows it before the tail. A horizontal flip before the tail, or a
box-aware ``BoxRandomHorizontalFlip``, stays in the workers (boxes move with it). The rewrite happens once, when the launcher
composes the config (before any worker starts), and is logged.
"""
import logging
from typing import Any, Dict, List, Optional, Tuple

from vissl_ext.config import ConfigError, did_you_mean, register_config_rewriter

BACKENDS = ("host", "fast", "device")
# transforms that take uint8 arrays as well as PIL images (then frames may be decoded to arrays)
_ARRAY_SAFE = {"VideoFramesToViews", "ImgReplicatePil", "FastRandomResizedCrop", "FastMocoV2Aug", "ToUint8Tensor",
               "FastColorDistortion", "FastGaussianBlur", "RegionPairToViews", "BoxRandomResizedCrop",
               "BoxRandomHorizontalFlip"}


def _all_array_safe(transforms) -> bool:
    return all(t["name"] in _ARRAY_SAFE or (t["name"] == "ImageOnly" and _all_array_safe(t.get("transforms", [])))
               for t in transforms)
_TAIL_NAMES = ("ImgPilColorDistortion", "ImgPilGaussianBlur", "RandomHorizontalFlip", "ToTensor", "Normalize")


def _tail(transforms: List[Dict], where: str, allow_flip: bool) -> Optional[Tuple[int, Dict[str, Any]]]:
    """(index where the tail starts, its parameters) or None when the list has no tail."""
    names = [t.get("name") for t in transforms]
    if "ImgPilColorDistortion" not in names:
        return None
    start = names.index("ImgPilColorDistortion")
    rest = list(transforms[start:])
    spec: Dict[str, Any] = {"strength": rest[0].get("strength", 1.0), "blur": None, "flip_p": 0.0, "mean": None,
                            "std": None}
    for t in rest:
        if "indices" in t:
            raise ConfigError(f"{where}: {t['name']} has 'indices' (per-copy transforms); AUGMENT_BACKEND fast/device "
                              f"need the plain MoCo v2 list")
    i = 1
    if i < len(rest) and rest[i]["name"] == "ImgPilGaussianBlur":
        spec["blur"] = {k: rest[i][k] for k in ("p", "radius_min", "radius_max") if k in rest[i]}
        i += 1
    if i < len(rest) and rest[i]["name"] == "RandomHorizontalFlip":
        if not allow_flip:
            raise ConfigError(f"{where}: RandomHorizontalFlip here would not move the boxes")
        spec["flip_p"] = float(rest[i].get("p", 0.5))
        i += 1
    if i < len(rest) and rest[i]["name"] == "ToTensor":
        i += 1
        if i < len(rest) and rest[i]["name"] == "Normalize":
            if "mean" not in rest[i] or "std" not in rest[i]:
                raise ConfigError(f"{where}: Normalize needs mean and std, got {dict(rest[i])}")
            spec["mean"], spec["std"] = list(rest[i]["mean"]), list(rest[i]["std"])
            i += 1
    else:
        raise ConfigError(f"{where}: AUGMENT_BACKEND fast/device need ToTensor after the colour distortion, blur and "
                          f"flip; got {[t['name'] for t in rest]}")
    if i != len(rest):
        raise ConfigError(f"{where}: AUGMENT_BACKEND fast/device handle the MoCo v2 tail {list(_TAIL_NAMES)}; "
                          f"{[t['name'] for t in rest[i:]]} after it are not supported")
    _check_spec(spec, where)
    return start, spec


def _check_spec(spec: Dict[str, Any], where: str):
    """The tail's values, checked when the config is composed (not in every data-loader worker):
    the host transforms build from them and the distributions are valid; mean/std are 3 numbers
    each and std > 0 (the fast paths would divide by it: inf pixels, silently)."""
    try:
        _device_spec(spec)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{where}: AUGMENT_BACKEND fast/device: bad augmentation parameters in "
                          f"{ {k: spec[k] for k in ('strength', 'blur', 'flip_p')} }: {e}") from None
    for key in ("mean", "std"):
        v = spec[key]
        if v is not None and (len(v) != 3 or not all(isinstance(x, (int, float)) and not isinstance(x, bool)
                                                      for x in v)):
            raise ConfigError(f"{where}: Normalize {key} must be 3 numbers (R, G, B), got {v}")
    if spec["std"] is not None and min(spec["std"]) <= 0:
        raise ConfigError(f"{where}: Normalize std must be > 0, got {spec['std']}")


def _device_spec(spec: Dict[str, Any]) -> Dict[str, Any]:
    from vissl_ext.data.transforms.fast_augment import MocoV2Distribution, _host_blur, _host_color_distortion

    d = MocoV2Distribution.from_host(_host_color_distortion(spec["strength"]),
                                     _host_blur(spec["blur"]) if spec["blur"] is not None else None, spec["flip_p"])
    return {"brightness": list(d.brightness), "contrast": list(d.contrast), "saturation": list(d.saturation),
            "hue": list(d.hue), "jitter_p": d.jitter_p, "gray_p": d.gray_p, "blur_p": d.blur_p, "sigma": list(d.sigma),
            "flip_p": d.flip_p, "mean": spec["mean"], "std": spec["std"]}


def _replacement(backend: str, spec: Dict[str, Any]) -> Dict[str, Any]:
    if backend == "device":
        return {"name": "ToUint8Tensor"}
    return {"name": "FastMocoV2Aug", "strength": spec["strength"], "blur": spec["blur"], "flip_p": spec["flip_p"],
            "mean": spec["mean"], "std": spec["std"]}


def _fast_crops(transforms: List[Dict]) -> List[Dict]:
    """RandomResizedCrop -> FastRandomResizedCrop where what follows it takes the uint8 array the
    fast crop returns; before a PIL-only transform (torchvision's flip or ColorJitter, VISSL's
    ImgPil*) the PIL crop stays, as the fast tail takes PIL images too."""
    out = list(transforms)
    for i, t in enumerate(transforms):
        if t.get("name") == "RandomResizedCrop" and "indices" not in t and _all_array_safe(transforms[i + 1:]):
            out[i] = dict(t, name="FastRandomResizedCrop")
    return out


def rewrite_transforms(transforms: List[Dict], backend: str, where: str) -> Tuple[List[Dict], Dict[str, Any]]:
    """The transform list for ``backend`` and the tail's parameters (top level or in ImageOnly)."""
    transforms = [dict(t) for t in transforms]
    found = _tail(transforms, where, allow_flip=True)
    if found is not None:
        start, spec = found
        return _fast_crops(transforms[:start]) + [_replacement(backend, spec)], spec
    for t in transforms:
        if t.get("name") == "ImageOnly":
            inner = [dict(x) for x in t.get("transforms", [])]
            found = _tail(inner, f"{where} ImageOnly", allow_flip=False)
            if found is not None:
                start, spec = found
                t["transforms"] = inner[:start] + [_replacement(backend, spec)]
                return transforms, spec
    raise ConfigError(f"{where}: AUGMENT_BACKEND={backend} needs the MoCo v2 augmentation (ImgPilColorDistortion, ..., "
                      f"ToTensor) in the list or in its ImageOnly entry; got {[t.get('name') for t in transforms]}")


def _already_rewritten(transforms) -> bool:
    def names(ts):
        for t in ts:
            yield t.get("name")
            if t.get("name") == "ImageOnly":
                yield from names(t.get("transforms", []))

    ns = set(names(transforms))
    return "ImgPilColorDistortion" not in ns and bool(ns & {"FastMocoV2Aug", "ToUint8Tensor"})


@register_config_rewriter
def apply_augment_backend(config) -> str:
    """Rewrite config.DATA.TRAIN.TRANSFORMS for its AUGMENT_BACKEND (in place; idempotent)."""
    train = config["DATA"]["TRAIN"]
    backend = train.get("AUGMENT_BACKEND", "host")
    where = "config.DATA.TRAIN.AUGMENT_BACKEND"
    if backend not in BACKENDS:
        hint = did_you_mean(backend, BACKENDS) if isinstance(backend, str) else ""
        raise ConfigError(f"{where} must be one of {list(BACKENDS)}, got {backend!r}{hint}")
    if backend == "host":
        return backend
    transforms = list(train["TRANSFORMS"])
    if _already_rewritten(transforms):
        if backend == "device" and not train.get("DEVICE_AUGMENT"):
            raise ConfigError(f"{where}=device: config.DATA.TRAIN.DEVICE_AUGMENT is missing")
        return backend
    new, spec = rewrite_transforms(transforms, backend, "config.DATA.TRAIN.TRANSFORMS")
    train["TRANSFORMS"] = new
    from vissl_ext.data.video_config import VIDEO_SOURCE_NAMES

    if _all_array_safe(new) and set(train.get("DATA_SOURCES", [])) <= set(VIDEO_SOURCE_NAMES):
        train["VIDEO"] = dict(train.get("VIDEO", {}) or {}, FRAME_ARRAYS=True)  # OpenCV decode, no PIL
    if backend == "device":
        train["DEVICE_AUGMENT"] = _device_spec(spec)
    logging.info(f"{where}={backend}: TRANSFORMS -> {[t['name'] for t in new]}"
                 + (f"; on the device: {train['DEVICE_AUGMENT']}" if backend == "device" else ""))
    return backend
