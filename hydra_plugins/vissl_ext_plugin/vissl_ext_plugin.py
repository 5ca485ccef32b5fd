"""Hydra search path: this project's configs (``configs/config/...``) ahead of VISSL's.

Only the search path lives here. Registration of components happens in ``import vissl_ext``
at the top of our launcher: registering from a hydra plugin import is not seen by VISSL's
spawned workers.
"""
import os

from hydra.core.config_search_path import ConfigSearchPath
from hydra.plugins.search_path_plugin import SearchPathPlugin


def vissl_ext_config_dir() -> str:
    """The folder holding ``config/`` (the repo's ``configs/`` or the copy in the package)."""
    here = os.path.dirname(os.path.abspath(__file__))
    import importlib.util

    spec = importlib.util.find_spec("vissl_ext")
    candidates = []
    if spec is not None and spec.origin:
        pkg = os.path.dirname(spec.origin)
        candidates += [os.path.join(os.path.dirname(pkg), "configs"), os.path.join(pkg, "_configs")]
    candidates.append(os.path.join(os.path.dirname(os.path.dirname(here)), "configs"))
    for c in candidates:
        if os.path.isdir(os.path.join(c, "config")):
            return c
    return candidates[0]


class VisslExtSearchPathPlugin(SearchPathPlugin):
    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        # VISSL's plugin prepends file://configs and pkg://configs; ours goes after those
        # (same file names never collide: our configs have their own names) but before
        # hydra's defaults. Absolute path: the launcher works from any directory.
        search_path.append(provider="vissl_ext", path=f"file://{vissl_ext_config_dir()}")
