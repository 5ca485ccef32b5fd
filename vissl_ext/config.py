"""Config helpers shared by every component: sections merged over their defaults, parameter
dataclasses from dicts, and validation at config time (in the launcher, before any worker
starts) so that a wrong value fails with a message naming the key. Components register their
own validators (e.g. vissl_ext/data/video_config.py for config.DATA.<split>.VIDEO)."""
from typing import Any, Dict, List

class ConfigError(ValueError):
    pass


def with_defaults(user, defaults: Dict[str, Any], where: str) -> Dict[str, Any]:
    """A config section merged over its defaults; unknown keys are a ConfigError naming them."""
    user = dict(user or {})
    unknown = set(user) - set(defaults)
    if unknown:
        raise ConfigError(f"{where} has unknown keys {sorted(unknown)}; known: {sorted(defaults)}")
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


def compose_config(overrides: List[Any]):
    """VISSL's compose + AttrDict conversion, every registered rewriter, then every registered
    validator: (args, config).
    ``import vissl_ext`` has registered every component's validator before this can be called."""
    from vissl.utils.hydra_config import compose_hydra_configuration, convert_to_attrdict

    cfg = compose_hydra_configuration(overrides)
    args, config = convert_to_attrdict(cfg)
    for fn in _REWRITERS:  # e.g. AUGMENT_BACKEND rewriting the transform list
        fn(config)
    validate_config(config)
    return args, config
