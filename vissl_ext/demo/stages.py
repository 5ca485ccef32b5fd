"""Quiet stages of the demo: one console line per stage (what, how long, a short result); every
stage's full output (subprocess output, log records, progress bars) goes to its own file under
``<demo>/logs/``, whose last lines are shown only when the stage fails."""
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections import OrderedDict
from typing import Callable, List, Optional


class StageFailed(RuntimeError):
    pass


class Stages:
    def __init__(self, out_dir: str, total: int):
        self.log_dir = os.path.join(out_dir, "logs")
        os.makedirs(self.log_dir, exist_ok=True)
        self.total = total
        self.count = 0
        self.seconds: "OrderedDict[str, float]" = OrderedDict()
        self.failed: List[str] = []

    def log_path(self, key: str) -> str:
        return os.path.join(self.log_dir, f"{key}.log")

    def run(self, key: str, title: str, fn: Callable, *, summary: Callable = None):
        """Run ``fn(log_file)``; print ``[i/N] title ... <seconds> s  <summary(result)>``."""
        self.count += 1
        print(f"[{self.count}/{self.total}] {title} ...", end="", flush=True)
        t0 = time.time()
        path = self.log_path(key)
        try:
            with open(path, "w") as log:
                result = fn(log)
        except Exception as e:  # a failed stage is reported, the chain decides whether to go on
            self.seconds[key] = time.time() - t0
            self.failed.append(key)
            print(f" FAILED after {self.seconds[key]:.0f} s: {e}", flush=True)
            print(tail(path), flush=True)
            print(f"    full output: {path}", flush=True)
            return None
        self.seconds[key] = time.time() - t0
        try:
            note = summary(result) if summary else ""
        except Exception as e:  # the stage itself succeeded; a broken note must not end the chain
            note = f"(no summary: {e})"
        print(f" {self.seconds[key]:.0f} s{'  ' + note if note else ''}", flush=True)
        return result


def tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join("    | " + x for x in f.readlines()[-lines:]).rstrip()
    except OSError:
        return ""


def call(cmd: List[str], log) -> None:
    """A tool in a subprocess, its output into ``log``; a non-zero exit raises StageFailed."""
    log.write("+ " + " ".join(cmd) + "\n")
    log.flush()
    rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
    if rc != 0:
        raise StageFailed(f"{os.path.basename(cmd[1]) if len(cmd) > 1 else cmd[0]} exited with {rc}")


@contextlib.contextmanager
def captured(log, level: int = logging.INFO):
    """In-process work: stdout, stderr (progress bars, warnings) and log records into ``log``."""
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    old_handlers, old_level = root.handlers[:], root.level
    root.handlers = [handler]
    root.setLevel(level)
    try:
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            yield
    finally:
        root.handlers = old_handlers
        root.setLevel(old_level)


def python_tool(tools_dir: str, name: str, *args: str) -> List[str]:
    return [sys.executable, os.path.join(tools_dir, name), *args]


def fmt_seconds(s: Optional[float]) -> str:
    return "-" if s is None else (f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min")
