"""Config helpers shared by every component: sections merged over their defaults, parameter
dataclasses from dicts, and validation at config time (in the launcher, before any worker
starts) so that a wrong value fails with a message naming the key. Components register their
own validators (e.g. vissl_ext/data/video_config.py for config.DATA.<split>.VIDEO)."""
import difflib
import os
import re
from typing import Any, Dict, Iterable, List


class ConfigError(ValueError):
    pass


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """`` (did you mean `X`?)`` for the known key nearest to a misspelled one, or ''."""
    # case-insensitive (temprature -> temperature, pair_gapp -> PAIR_GAP), suggested as spelled
    lower = {str(k).lower(): str(k) for k in known}
    close = [lower[c] for c in difflib.get_close_matches(key.lower(), list(lower), n=1, cutoff=0.6)]
    return f" (did you mean `{close[0]}`?)" if close else ""


def need_int(value, where: str, minimum: int):
    """An integer >= minimum; booleans are not integers here (``PAIR_GAP=true``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{where} must be an integer >= {minimum}, got {value!r}")
    return value


def need_number(value, where: str, low: float = None, high: float = None, low_open: bool = False,
                high_open: bool = False):
    """A real number within [low, high] (``low_open``/``high_open``: bound excluded); strings such
    as ``temperature=abc`` and booleans are ConfigErrors, not TypeErrors."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float))
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        rng = ""
        if low is not None or high is not None:
            lo = "" if low is None else f"{'(' if low_open else '['}{low}"
            hi = "" if high is None else f"{high}{')' if high_open else ']'}"
            rng = f" in {lo or '(-inf'}, {hi or 'inf)'}"
        raise ConfigError(f"{where} must be a number{rng}, got {value!r}")
    return value


def with_defaults(user, defaults: Dict[str, Any], where: str) -> Dict[str, Any]:
    """A config section merged over its defaults; unknown keys are a ConfigError naming them."""
    user = dict(user or {})
    unknown = sorted(set(user) - set(defaults), key=str)
    if unknown:
        hints = "".join(did_you_mean(str(k), defaults) for k in unknown[:1])
        raise ConfigError(f"{where} has unknown keys {unknown}{hints}; known: {sorted(defaults)}")
    out = dict(defaults)
    out.update(user)
    return out


def dataclass_from_dict(cls, d: dict, what: str):
    """``cls(**d).validate()`` for a parameter dataclass; unknown keys raise a ValueError naming them."""
    from dataclasses import fields

    known = {f.name for f in fields(cls)}
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {what} parameters {sorted(unknown)}; known: {sorted(known)}")
    return cls(**d).validate()


# config validators of other components register here: fn(config) raising ConfigError
_VALIDATORS = []


def register_config_validator(fn):
    if fn not in _VALIDATORS:
        _VALIDATORS.append(fn)
    return fn


@register_config_validator
def _validate_params_file(config):
    """config.MODEL.WEIGHTS_INIT.PARAMS_FILE, when it is a file, must load safely (VISSL's own
    load is weights_only too, but refuses a crafted file deep inside a worker; here it is one
    line before any worker starts). Host configs carry placeholders: those are VISSL's to judge."""
    from vissl_ext.utils.safe_load import UnsafeFileError, torch_load

    params = (config.get("MODEL", {}).get("WEIGHTS_INIT", {}) or {}).get("PARAMS_FILE", "")
    if not params or not os.path.isfile(params):  # remote (g_pathmgr) paths, placeholders
        return
    try:
        torch_load(params, mmap=True, flag_hint=False)
    except UnsafeFileError as e:
        raise ConfigError(f"config.MODEL.WEIGHTS_INIT.PARAMS_FILE: {e}") from None


AMP_TYPES = ("apex", "pytorch")
AMP_ON_GPU = "config.MACHINE.DEVICE=gpu config.MODEL.AMP_PARAMS.AMP_TYPE=pytorch"


@register_config_validator
def _validate_amp(config):
    """config.MODEL.AMP_PARAMS: mixed precision only where VISSL runs it. VISSL's task asserts a
    CUDA device in every worker (a 34-line traceback on CPU) and reads AMP_TYPE as apex or pytorch.
    Whether apex is installed is a property of the machine: engines/preflight.py checks it."""
    amp = (config.get("MODEL", {}) or {}).get("AMP_PARAMS", {}) or {}
    use = amp.get("USE_AMP", False)
    if not isinstance(use, bool):
        raise ConfigError(f"config.MODEL.AMP_PARAMS.USE_AMP must be true or false, got {use!r}")
    if not use:
        return
    amp_type = amp.get("AMP_TYPE", "apex")
    if str(amp_type).lower() not in AMP_TYPES:
        raise ConfigError(f"config.MODEL.AMP_PARAMS.AMP_TYPE must be one of {list(AMP_TYPES)}, got {amp_type!r}"
                          f"{did_you_mean(str(amp_type), AMP_TYPES)}")
    device = (config.get("MACHINE", {}) or {}).get("DEVICE", "gpu")
    if device != "gpu":
        raise ConfigError(f"config.MODEL.AMP_PARAMS.USE_AMP=true with config.MACHINE.DEVICE={device}: VISSL runs mixed "
                          f"precision on CUDA only; on CPU train with config.MODEL.AMP_PARAMS.USE_AMP=false, on a GPU "
                          f"with {AMP_ON_GPU}")


def validate_config(config):
    """Run every registered validator on a composed VISSL config (AttrDict)."""
    for fn in _VALIDATORS:
        fn(config)


# config rewriters run first, on the composed config, in place: fn(config)
_REWRITERS = []


def register_config_rewriter(fn):
    """Register ``fn(config)`` that rewrites a composed config in place before validation."""
    if fn not in _REWRITERS:
        _REWRITERS.append(fn)
    return fn


def _node(cfg, dotted: str):
    node = cfg
    for part in dotted.split("."):
        node = node[part]
    return node


def _unknown_key_message(key: str, overrides: List[str]) -> str:
    """'unknown config key K (did you mean `X`?)': X from the config composed without that override."""
    from vissl.utils.hydra_config import compose_hydra_configuration

    rest = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") != key]
    hint = ""
    try:
        cfg = compose_hydra_configuration(rest)
        parts = key.split(".")
        for depth in range(1, len(parts)):  # the first missing part, under the deepest existing node
            parent = _node(cfg, ".".join(parts[:depth]))
            if not hasattr(parent, "keys") or parts[depth] not in parent:
                hint = did_you_mean(parts[depth], parent.keys()) if hasattr(parent, "keys") else ""
                break
    except Exception:  # another bad override: the message without a hint
        pass
    return f"unknown config key {key}{hint or f'; to add a new key, write +{key}=...'}"


def _compose_error(e: Exception, overrides: List[str]) -> ConfigError:
    """A hydra/omegaconf composition error as one line naming the key or override."""
    cause = e.__cause__
    key = getattr(cause, "full_key", None)
    m = re.match(r"Could not override '([^']+)'", str(e))
    if m and key:
        return ConfigError(_unknown_key_message(m.group(1), overrides))
    lines = str(e).strip().splitlines()
    return ConfigError(lines[0] if lines else type(e).__name__)  # hydra appends the search path etc.


def compose_config(overrides: List[Any], dump: bool = True):
    """VISSL's compose + AttrDict conversion, every registered rewriter, then every registered
    validator: (args, config). User errors (unknown keys, unparsable overrides, missing config
    files, wrong values) raise ConfigError. ``dump``: VISSL writes train_config.yaml into
    CHECKPOINT.DIR, as a run should; a config only read (not run) passes False, so nothing lands
    in a relative CHECKPOINT.DIR under the current directory.
    ``import vissl_ext`` has registered every component's validator before this can be called."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException
    from vissl.utils.hydra_config import compose_hydra_configuration, convert_to_attrdict

    try:
        cfg = compose_hydra_configuration(overrides)
    except (HydraException, OmegaConfBaseException) as e:
        raise _compose_error(e, [str(o) for o in overrides]) from e
    args, config = convert_to_attrdict(cfg, dump_config=dump)
    for fn in _REWRITERS:  # e.g. AUGMENT_BACKEND rewriting the transform list
        fn(config)
    validate_config(config)
    return args, config
