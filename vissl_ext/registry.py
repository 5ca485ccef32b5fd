"""Registration helpers that VISSL lacks: a decorator for data sources, a hook registry and
the online monitor's metrics.

VISSL keeps data sources in a plain dict (``vissl.data.DATASET_SOURCE_MAP``) and builds hooks
from the ``hook_generator`` handed to ``launch_distributed``. These helpers let this plugin, and
any project that imports it, extend both the same way::

    from vissl_ext.registry import DataSource, register_data_source, register_hook_factory

    @register_data_source("my_source")
    class MySource(DataSource): ...

    @register_hook_factory("my_hooks")
    def my_hooks(cfg):
        return [MyHook()] if cfg.get("MY_FLAG", False) else []

    @register_monitor_metric("MY_METRIC")      # config.MONITOR.MY_METRIC.*
    class MyMetric(MonitorMetric): ...         # vissl_ext.hooks.monitor_hook

Registration is idempotent for the same object (module re-imports in spawned workers) and
refuses a different object under a taken name.
"""
import logging
from collections import OrderedDict
from typing import Callable, List, Optional

_HOOK_FACTORIES: "OrderedDict[str, Callable]" = OrderedDict()


def _same(a, b) -> bool:
    # A module re-imported under another name (spawned workers, __main__) yields a new object
    # with the same qualified name: treat it as the same registration.
    return a is b or (
        getattr(a, "__qualname__", None) == getattr(b, "__qualname__", None)
        and getattr(a, "__module__", "").split(".")[-1] == getattr(b, "__module__", "").split(".")[-1]
    )


def _register_once(registry: dict, name: str, what: str, host: Optional[Callable] = None):
    """Decorator putting an object into a host registry dict under ``name``, idempotent for the
    same object: VISSL's and classy's own decorators raise on the re-import that a spawned worker
    or a reloaded module does. Another object under a taken name is an error. ``host``: the
    host's own decorator factory, used for a first registration so its checks and bookkeeping run."""

    def wrap(obj):
        existing = registry.get(name)
        if existing is None and host is not None:
            return host(name)(obj)
        if existing is not None and not _same(existing, obj):
            raise ValueError(f"{what} '{name}' is already registered to {existing!r}")
        registry[name] = obj
        return obj

    return wrap


def register_data_source(name: str, with_subset: bool = False):
    """Class decorator: add a data source to VISSL's DATASET_SOURCE_MAP under ``name``.

    with_subset: whether VISSL's DATA_LIMIT sub-sampling may index this source directly.
    """
    from vissl.data import DATA_SOURCES_WITH_SUBSET_SUPPORT, DATASET_SOURCE_MAP

    def wrap(cls):
        _register_once(DATASET_SOURCE_MAP, name, "data source")(cls)
        if with_subset:
            DATA_SOURCES_WITH_SUBSET_SUPPORT.add(name)
        return cls

    return wrap


class DataSource:
    """What every VISSL data source keeps of its constructor's arguments; subclasses define
    ``__getitem__`` (-> (image, is_valid)), ``__len__`` and ``get_image_paths``."""

    def __init__(self, cfg, data_source: str, path: str, split: str, dataset_name: str):
        self.cfg = cfg
        self.data_source = data_source
        self.path = path
        self.split = split
        self.dataset_name = dataset_name

    def num_samples(self) -> int:
        return len(self)


def register_collator(name: str):
    """Like vissl's register_collator, but idempotent across re-imports."""
    from vissl.data.collators import COLLATOR_REGISTRY, register_collator as _host

    return _register_once(COLLATOR_REGISTRY, name, "collator", host=_host)


def register_transform(name: str, makes_copies: bool = False, groups_views: bool = False):
    """Register a classy/VISSL transform; ``makes_copies`` marks transforms that turn one
    entry of sample["data"] into several (VISSL then flattens data, labels and indices);
    ``groups_views``, transforms that take all of a sample's views at once (VISSL's grouping)."""
    from classy_vision.dataset.transforms import TRANSFORM_REGISTRY
    from classy_vision.dataset.transforms import register_transform as _host
    from vissl.data.ssl_transforms.ssl_transforms_wrapper import DEFAULT_TRANSFORM_TYPES

    def wrap(cls):
        _register_once(TRANSFORM_REGISTRY, name, "transform", host=_host)(cls)
        copies = DEFAULT_TRANSFORM_TYPES["TRANSFORMS_WITH_COPIES"]
        if makes_copies and name not in copies:
            copies.append(name)
        grouping = DEFAULT_TRANSFORM_TYPES["TRANSFORMS_WITH_GROUPING"]
        if groups_views and name not in grouping:
            grouping.append(name)
        return cls

    return wrap


def register_model_trunk(name: str):
    """Class decorator: a VISSL model trunk (config.MODEL.TRUNK.NAME)."""
    from vissl.models.trunks import MODEL_TRUNKS_REGISTRY

    return _register_once(MODEL_TRUNKS_REGISTRY, name, "model trunk")


def register_model_head(name: str):
    """Class decorator: a VISSL model head (config.MODEL.HEAD.PARAMS entries)."""
    from vissl.models.heads import MODEL_HEADS_REGISTRY

    return _register_once(MODEL_HEADS_REGISTRY, name, "model head")


def register_loss(name: str):
    """Class decorator: a loss (config.LOSS.name), in classy vision's registry as VISSL's are."""
    from classy_vision.losses import LOSS_CLASS_NAMES, LOSS_REGISTRY

    def wrap(cls):
        _register_once(LOSS_REGISTRY, name, "loss")(cls)
        LOSS_CLASS_NAMES.add(cls.__name__)
        return cls

    return wrap


def register_hook_factory(name: str):
    """Register ``fn(cfg) -> List[ClassyHook]``; :func:`hook_generator` appends its hooks to
    VISSL's default ones."""
    return _register_once(_HOOK_FACTORIES, name, "hook factory")


def hook_generator(cfg) -> List:
    """VISSL's default hooks followed by every registered factory's hooks, VISSL's loss NaN check last."""
    from vissl.hooks import default_hook_generator

    hooks = list(default_hook_generator(cfg))
    for name, factory in _HOOK_FACTORIES.items():
        extra = list(factory(cfg) or [])
        if extra:
            logging.info(f"vissl_ext hook factory '{name}' adds {[type(h).__name__ for h in extra]}")
        hooks.extend(extra)
    # VISSL's loss check last: a plugin's own check of the same step names the cause first
    # (temporal_contrastive_loss names the term that is not finite)
    from vissl.hooks import CheckNanLossHook

    return [h for h in hooks if not isinstance(h, CheckNanLossHook)] + [h for h in hooks if isinstance(h, CheckNanLossHook)]


_MONITOR_METRICS: "OrderedDict[str, object]" = OrderedDict()


def register_monitor_metric(name: str):
    """Class decorator: a metric of the online monitor (vissl_ext.hooks.monitor_hook), configured
    by ``config.MONITOR.<name>``; the class subclasses ``MonitorMetric``. An instance is kept."""

    def wrap(cls):
        existing = _MONITOR_METRICS.get(name)
        if existing is not None and not _same(type(existing), cls):
            raise ValueError(f"monitor metric '{name}' is already registered to {type(existing)!r}")
        _MONITOR_METRICS[name] = cls()
        return cls

    return wrap


def monitor_metrics() -> "OrderedDict[str, object]":
    """{config section name: metric instance} of every registered monitor metric."""
    return _MONITOR_METRICS
