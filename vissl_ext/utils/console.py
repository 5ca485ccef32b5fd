"""What a person sees while a run works: a quiet console for VISSL's engines (header, one
progress line per logging step, a final line), VISSL's full output kept in ``log.txt``.

``VISSL_EXT_VERBOSE=1`` brings VISSL's full output back to the console. The environment
reaches every process VISSL spawns, so the choice holds in each worker.
"""
import logging
import os

VERBOSE_ENV = "VISSL_EXT_VERBOSE"
# a LogRecord attribute: records carrying it are shown on the quiet console
CONSOLE_FLAG = "vissl_ext_console"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def say(msg: str, level: int = logging.INFO):
    """Log ``msg`` through VISSL's current logger (file and console) and mark it for the quiet
    console, which shows it as written (a warning too). ``logging.log`` on purpose: VISSL's
    setup_logging rebinds ``logging.root``."""
    logging.log(level, msg, extra={CONSOLE_FLAG: True})
