"""The quiet console: VISSL's ``setup_logging`` (called per process: the launcher, then each
worker) is wrapped so that its stdout handler is replaced by :class:`QuietConsoleHandler`.
Its file handler (``log.txt``, rank 0) is left as it is and still gets every record.

The console then shows records marked by :func:`vissl_ext.utils.console.say`, warnings and errors
(minus a few host warnings that say nothing to act on), and one summary line in place of
VISSL's per-weight "Loaded:/Ignored layer:/Not found:" lines. Workers of rank > 0, whose
output VISSL sends to the console only, write their full log to ``log_rank<N>.txt`` beside
``log.txt``.
"""
import logging
import re
import sys
from collections import Counter, defaultdict

from vissl_ext.utils.console import CONSOLE_FLAG, verbose

# host warnings shown on every CPU run that nobody can act on; still in log.txt
_QUIET_WARNINGS = re.compile(r"^(Batch shuffling: |Selecting a CPU device)")
_WEIGHT_LINE = re.compile(r"^(Loaded|Ignored layer|Not found):\s+(\S+)")
_WEIGHTS_DONE = re.compile(r"^Extra layers not loaded from checkpoint: (.*)$", re.S)
_WEIGHTS_FROM = re.compile(r"^Initializing model from: (.*)$")
# host records worth a console line even when quiet: a finished run, a resume, meter values
# (accuracy of the host's linear benchmarks) at the end of a phase
_KEEP = re.compile(r"^(Training already succeeded|Resume from file: |Rank: \d+, name: \S+, value: )")


class WeightLoadSummary:
    """Counts VISSL's per-weight load lines, grouped by the first part of the layer name
    (trunk / heads), and turns them into one line when the host reports its extra layers."""

    def __init__(self):
        self.source = None
        self.counts = defaultdict(Counter)

    def feed(self, msg: str):
        """Returns the summary line when ``msg`` ends a weight-loading report, else None."""
        m = _WEIGHTS_FROM.match(msg)
        if m:
            self.source = m.group(1).strip()
            return None
        m = _WEIGHT_LINE.match(msg)
        if m:
            kind, layer = m.groups()
            group = layer.split(".")[0] if "." in layer else "other"
            # VISSL names trunk/heads in models, but not in a bare trunk or head list (MoCo's encoder)
            group = {"_feature_blocks": "trunk"}.get(group, "heads" if group.isdigit() else group)
            self.counts[group][kind] += 1
            return None
        m = _WEIGHTS_DONE.match(msg)
        if m:
            line = self.format(extra=len(re.findall(r"'[^']*'", m.group(1))))
            self.counts.clear()
            self.source = None
            return line
        return None

    def format(self, extra: int = 0) -> str:
        parts = []
        for group, c in sorted(self.counts.items(), key=lambda kv: (kv[0] != "trunk", kv[0])):
            new = "missing" if group == "trunk" else "new"
            words = []
            if c["Loaded"] or group == "trunk":
                words.append(f"{c['Loaded']} loaded")
            if c["Not found"] or group == "trunk":
                words.append(f"{c['Not found']} {new}")
            if c["Ignored layer"]:
                words.append(f"{c['Ignored layer']} ignored")
            parts.append(f"{group}: {', '.join(words)}")
        if extra:
            parts.append(f"{extra} checkpoint tensors unused")
        src = f" from {self.source}" if self.source else ""
        return f"weights{src}: " + ("; ".join(parts) or "no layer reported")

    def is_weight_line(self, msg: str) -> bool:
        return bool(_WEIGHT_LINE.match(msg) or _WEIGHTS_DONE.match(msg))


class QuietConsoleHandler(logging.StreamHandler):
    """Console handler of a quiet run (see the module docstring)."""

    def __init__(self, stream=None, rank: int = 0):
        super().__init__(stream or sys.stdout)
        self.rank = rank
        self.weights = WeightLoadSummary()
        self.setFormatter(logging.Formatter("%(message)s"))
        self._plain = logging.Formatter("%(levelname)s %(filename)s:%(lineno)d: %(message)s")

    def emit(self, record: logging.LogRecord):
        msg = record.getMessage() if isinstance(record.msg, str) else ""
        if getattr(record, CONSOLE_FLAG, False):
            return super().emit(record)
        summary = self.weights.feed(msg)
        if summary is not None and self.rank == 0:
            return super().emit(_plain_record(summary, record))
        if self.weights.is_weight_line(msg):
            return
        if record.levelno >= logging.WARNING and not (_QUIET_WARNINGS.match(msg) and record.levelno < logging.ERROR):
            prefix = f"[rank {self.rank}] " if self.rank else ""
            return super().emit(_plain_record(prefix + self._plain.format(record), record))
        if self.rank == 0 and _KEEP.match(msg):
            return super().emit(_plain_record(msg, record))


def _plain_record(text: str, like: logging.LogRecord) -> logging.LogRecord:
    r = logging.makeLogRecord({"msg": text, "levelno": like.levelno, "levelname": like.levelname})
    return r


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
    """Wrap VISSL's setup_logging in this process (idempotent). Nothing changes when
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
