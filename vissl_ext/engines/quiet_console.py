"""The quiet console: VISSL's ``setup_logging`` (called per process: the launcher, then each
worker) is wrapped so that its stdout handler is replaced by :class:`QuietConsoleHandler`.
Its file handler (``log.txt``, rank 0) is left as it is and still gets every record.

The console then shows records marked by :func:`vissl_ext.utils.console.say`, warnings and errors
(minus a few host warnings that say nothing to act on), and, in place of VISSL's per-weight
"Loaded:/Ignored layer:/Not found:" lines, one line counted from the values that report is given.
Workers of rank > 0, whose output VISSL sends to the console only, write their full log to
``log_rank<N>.txt`` beside ``log.txt``.
"""
import logging
import re
import sys
from collections import Counter, defaultdict

from vissl_ext.utils.console import CONSOLE_FLAG, say, verbose

# host warnings shown on every CPU run that nobody can act on; still in log.txt
_QUIET_WARNINGS = re.compile(r"^(Batch shuffling: |Selecting a CPU device)")
# host records worth a console line even when quiet: a finished run, a resume, meter values
# (accuracy of the host's linear benchmarks) at the end of a phase
_KEEP = re.compile(r"^(Training already succeeded|Resume from file: |Rank: \d+, name: \S+, value: )")


def weights_line(model_state_dict, state_dict, skip_layers, model_config) -> str:
    """VISSL's per-weight report (``print_loaded_dict_info``) as one line, counted from the host's
    own arguments by its rules, grouped by the first part of the layer name (trunk / heads)."""
    evaluating = model_config.FEATURE_EVAL_SETTINGS.EVAL_MODE_ON and not \
        model_config.FEATURE_EVAL_SETTINGS.EVAL_TRUNK_AND_HEAD
    counts = defaultdict(Counter)
    for name in model_state_dict:
        group = name.split(".")[0] if "." in name else "other"
        # VISSL names trunk/heads in models, but not in a bare trunk or head list (MoCo's encoder)
        group = {"_feature_blocks": "trunk"}.get(group, "heads" if group.isdigit() else group)
        if any(s in name for s in skip_layers) or (name in state_dict and "heads" in name and evaluating):
            counts[group]["ignored"] += 1
        else:
            counts[group]["loaded" if name in state_dict else "missing" if group == "trunk" else "new"] += 1
    parts = []
    for group, c in sorted(counts.items(), key=lambda kv: (kv[0] != "trunk", kv[0])):
        shown = ("loaded", "missing", "ignored") if group == "trunk" else ("loaded", "new", "ignored")
        parts.append(f"{group}: " + ", ".join(f"{c[k]} {k}" for k in shown if c[k] or k != "ignored" and group == "trunk"))
    extra = sum(name not in model_state_dict for name in state_dict)
    if extra:
        parts.append(f"{extra} checkpoint tensors unused")
    return "weights: " + ("; ".join(parts) or "no layer reported")


class QuietConsoleHandler(logging.StreamHandler):
    """Console handler of a quiet run (see the module docstring)."""

    def __init__(self, stream=None, rank: int = 0):
        super().__init__(stream or sys.stdout)
        self.rank = rank
        self.setFormatter(logging.Formatter("%(message)s"))
        self._plain = logging.Formatter("%(levelname)s %(filename)s:%(lineno)d: %(message)s")

    def emit(self, record: logging.LogRecord):
        msg = record.getMessage() if isinstance(record.msg, str) else ""
        if getattr(record, CONSOLE_FLAG, False):
            return super().emit(record)
        if record.levelno >= logging.WARNING and not (_QUIET_WARNINGS.match(msg) and record.levelno < logging.ERROR):
            prefix = f"[rank {self.rank}] " if self.rank else ""
            return super().emit(_plain_record(prefix + self._plain.format(record), record))
        if self.rank == 0 and _KEEP.match(msg):
            return super().emit(_plain_record(msg, record))


def _plain_record(text: str, like: logging.LogRecord) -> logging.LogRecord:
    return logging.makeLogRecord({"msg": text, "levelno": like.levelno, "levelname": like.levelname})


def quieten(logger: logging.Logger, output_dir=None, rank: int = 0):
    """Swap the stdout handler VISSL's setup_logging put on ``logger`` for a quiet one; ranks
    > 0 also log everything to ``<output_dir>/log_rank<N>.txt``."""
    for h in list(logger.handlers):
        if type(h) is logging.StreamHandler and h.stream in (sys.stdout, sys.__stdout__):
            logger.removeHandler(h)
            logger.addHandler(QuietConsoleHandler(h.stream, rank))
            if output_dir and rank > 0:
                from vissl.utils.logger import _cached_log_stream

                fh = logging.StreamHandler(_cached_log_stream(f"{output_dir}/log_rank{rank}.txt"))
                fh.setFormatter(h.formatter)
                logger.addHandler(fh)
    # noise from outside VISSL's logger that reaches stderr on every CPU start
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    import warnings

    warnings.showwarning = _warning_to_log


def _warning_to_log(message, category, filename, lineno, file=None, line=None):
    """Python warnings (deprecations inside torch / classy, pin_memory on CPU, ...) go to the
    log file, not the console, in quiet mode."""
    logging.info(f"{category.__name__} {filename}:{lineno}: {message}")


# modules that bound ``setup_logging`` by name at import
_HOST_MODULES = ("vissl.utils.logger", "vissl.engines.train", "vissl.engines.extract_features",
                 "vissl.engines.extract_cluster", "vissl.utils.distributed_launcher")


def install():
    """Wrap VISSL's setup_logging and per-weight report in this process (idempotent). Nothing changes when
    ``VISSL_EXT_VERBOSE`` is set. Called by the launcher at import, so spawned workers (which
    re-import the launcher's main module) and SLURM jobs (unpickled from vissl_ext.engines.launcher)
    are quiet too."""
    if verbose():
        return
    import importlib

    import vissl.utils.logger as host

    original = getattr(host.setup_logging, "_vissl_ext_original", host.setup_logging)

    def setup_logging(name, output_dir=None, rank=0):
        original(name, output_dir=output_dir, rank=rank)
        quieten(logging.root, output_dir, rank)

    setup_logging._vissl_ext_original = original
    for mod_name in _HOST_MODULES:
        mod = importlib.import_module(mod_name)
        if hasattr(mod, "setup_logging"):
            mod.setup_logging = setup_logging

    import vissl.utils.checkpoint as ckpt  # the models import print_loaded_dict_info when they load
    from classy_vision.generic.distributed_util import is_primary

    report = getattr(ckpt.print_loaded_dict_info, "_vissl_ext_original", ckpt.print_loaded_dict_info)

    def print_loaded_dict_info(model_state_dict, state_dict, skip_layers, model_config):
        report(model_state_dict, state_dict, skip_layers, model_config)  # its per-weight lines: log.txt
        line = weights_line(model_state_dict, state_dict, skip_layers, model_config)
        (say if is_primary() else logging.info)(line)  # VISSL reports on each node's local rank 0

    print_loaded_dict_info._vissl_ext_original = report
    ckpt.print_loaded_dict_info = print_loaded_dict_info
