"""Environment dumps without secrets: VISSL 0.1.6 logs every environment variable at start
(``vissl.utils.env.print_system_env_info``, called by its train / extract_features /
extract_cluster engines, on the console and in ``<CHECKPOINT.DIR>/log.txt``). Values of
variables whose names look secret are replaced by ``***``; the name stays, so users see the
variable was set. Applied by ``vissl_ext.utils.compat`` in every process that imports vissl_ext
(the launcher, its spawned workers, SLURM jobs)."""
import sys
from typing import Mapping

SECRET_NAME_PARTS = ("KEY", "SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE",
                     "SESSION", "PRIVATE")
MASK = "***"
# modules that import print_system_env_info by name (and so keep their own reference)
_VISSL_ENV_PRINTERS = ("vissl.utils.env", "vissl.engines.train", "vissl.engines.extract_features",
                       "vissl.engines.extract_cluster")


def is_secret_name(name: str) -> bool:
    up = name.upper()
    return any(part in up for part in SECRET_NAME_PARTS)


def masked_env(env: Mapping[str, str]) -> dict:
    """A copy of ``env`` with the value of every secret-looking name replaced by ``***``."""
    return {k: (MASK if is_secret_name(k) else v) for k, v in env.items()}


def mask_vissl_env_printing():
    """Make VISSL's print_system_env_info print masked values (idempotent)."""
    import vissl.utils.env as vissl_env

    original = vissl_env.print_system_env_info
    if getattr(original, "_vissl_ext", False):
        return

    def print_system_env_info(current_env):
        original(masked_env(current_env))

    print_system_env_info._vissl_ext = True
    for name in _VISSL_ENV_PRINTERS:
        mod = sys.modules.get(name)
        if mod is not None and hasattr(mod, "print_system_env_info"):
            mod.print_system_env_info = print_system_env_info
