"""Checkpoints that survive preemption: atomic writes, and a resume that trusts only files that load.

VISSL (through classy's ``save_checkpoint``) writes checkpoints in place, and its AUTO_RESUME
takes the highest-numbered ``model_*`` file or any ``model_final*`` file unchecked: a job killed
while saving leaves a file that every rerun trusts ("Training already succeeded" on a broken
final model, or an EOFError on each resume). :mod:`vissl_ext.utils.compat` routes VISSL's writes and
its resume decisions through this module:

- :func:`save_checkpoint` writes to a temporary file beside the target, flushes, fsyncs and
  renames it over the target (a reader sees the old file or the new one, never half of one);
- :func:`is_training_finished` and :func:`get_resume_checkpoint` validate a candidate (it loads
  with ``torch.load(weights_only=True)`` and holds the keys VISSL's checkpoint hook writes)
  before trusting it; a corrupt one is logged by name and moved aside as ``<name>.corrupt``,
  and the next candidate is tried (newest first), or training starts fresh.
"""
import glob
import logging
import os
import re
from typing import List, Optional

from vissl_ext.utils.atomic_io import atomic_open

FINAL_RE = re.compile(r"^model_final_checkpoint_([a-z]+)(\d+)\.torch$")
NUMBERED_RE = re.compile(r"^model_(phase|iteration)(\d+)\.torch$")
# what VISSL's LogLossMetricsCheckpointHook writes into a consolidated checkpoint
REQUIRED_KEYS = ("classy_state_dict", "phase_idx", "iteration")


def save_torch_atomic(obj, path: str):
    """torch.save to a temporary file in the same folder, fsync, atomic rename."""
    import torch

    with atomic_open(path, "wb") as f:
        torch.save(obj, f)


def save_checkpoint(checkpoint_folder: str, state, checkpoint_file: str = "checkpoint.torch") -> str:
    """classy_vision.generic.util.save_checkpoint with an atomic write (local folders)."""
    path = os.path.join(checkpoint_folder, checkpoint_file)
    try:
        save_torch_atomic(state, path)
    except BaseException:
        logging.warning(f"Unable to write checkpoint {path}", exc_info=True)
        raise
    return path


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------
def checkpoint_problem(path: str, required=REQUIRED_KEYS) -> Optional[str]:
    """Why the checkpoint at ``path`` cannot be trusted, or None when it loads and holds
    ``required`` keys (a shard list: every shard it names does)."""
    import torch

    try:
        size = os.path.getsize(path)
    except OSError as e:
        return f"cannot stat ({e})"
    if size == 0:
        return "empty file (0 bytes)"
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated zip, EOFError, unpickling errors
        return f"does not load ({type(e).__name__}: {str(e)[:200]})"
    if not isinstance(ck, dict):
        return f"holds a {type(ck).__name__}, not a checkpoint dict"
    if ck.get("type") == "shard_list":
        shards = ck.get("shards")
        if not isinstance(shards, list) or not shards:
            return "shard list without shards"
        for s in shards:
            why = checkpoint_problem(os.path.join(os.path.dirname(path), s), required)
            if why:
                return f"shard {s}: {why}"
        return None
    missing = [k for k in required if k not in ck]
    if missing:
        return f"lacks keys {missing}"
    if "classy_state_dict" in required and not isinstance(ck["classy_state_dict"], dict):
        return "classy_state_dict is not a dict"
    return None


def move_aside(path: str, reason: str) -> Optional[str]:
    """Rename a corrupt checkpoint to ``<path>.corrupt`` (``.corrupt.1``, ... if taken)."""
    dest, n = path + ".corrupt", 0
    while os.path.exists(dest):
        n += 1
        dest = f"{path}.corrupt.{n}"
    try:
        os.replace(path, dest)
    except FileNotFoundError:  # another node moved it first
        return None
    logging.warning(f"checkpoint {path} is corrupt ({reason}); moved aside to {dest}")
    return dest


def remove_partial_writes(folder: str) -> List[str]:
    """Delete temporary files left by checkpoint writes that were killed (never read)."""
    removed = []
    for p in glob.glob(os.path.join(glob.escape(folder), ".model_*.torch.*.tmp")):
        try:
            os.remove(p)
            removed.append(p)
        except FileNotFoundError:
            pass
    if removed:
        logging.warning(f"removed {len(removed)} partial checkpoint writes of a killed run: {removed}")
    return removed


def _numbered(folder: str, regex, newest_first=True):
    found = []
    for name in os.listdir(folder):
        m = regex.match(name)
        if m:
            found.append((int(m.group(2)), name))
    return [os.path.join(folder, name) for _, name in sorted(found, reverse=newest_first)]


def _first_valid(paths):
    for p in paths:
        why = checkpoint_problem(p)
        if why is None:
            return p
        move_aside(p, why)
    return None


def _check_symlink(cfg, folder: str):
    """VISSL's checkpoint.torch link: drop it when dangling, and when resume would use it,
    validate what it points at."""
    link = os.path.join(folder, "checkpoint.torch")
    if not os.path.islink(link):
        return
    if os.path.exists(link) and cfg["CHECKPOINT"].get("USE_SYMLINK_CHECKPOINT_FOR_RESUME", False):
        target = os.path.realpath(link)
        why = checkpoint_problem(target)
        if why:
            move_aside(target, why)
    if not os.path.exists(link):
        os.remove(link)


def is_training_finished(cfg, checkpoint_folder: str) -> bool:
    """VISSL's check, trusting only a final checkpoint that loads (corrupt ones moved aside)."""
    remove_partial_writes(checkpoint_folder)
    _check_symlink(cfg, checkpoint_folder)
    if cfg["CHECKPOINT"]["OVERWRITE_EXISTING"]:
        return False
    return _first_valid(_numbered(checkpoint_folder, FINAL_RE)) is not None


def get_resume_checkpoint(cfg, checkpoint_folder: str) -> Optional[str]:
    """VISSL's resume choice (final checkpoint first unless OVERWRITE_EXISTING, else the
    LATEST_CHECKPOINT_RESUME_FILE_NUM-th newest model_phase / model_iteration file), among
    checkpoints that pass :func:`checkpoint_problem` only; None: start fresh."""
    ck = cfg["CHECKPOINT"]
    if not ck["AUTO_RESUME"]:
        return None
    remove_partial_writes(checkpoint_folder)
    if not ck["OVERWRITE_EXISTING"]:
        final = _first_valid(_numbered(checkpoint_folder, FINAL_RE))
        if final:
            logging.info(f"Resume from file: {final}")
            return final
    kind = "iteration" if ck["CHECKPOINT_ITER_FREQUENCY"] > 0 else "phase"
    candidates = [p for p in _numbered(checkpoint_folder, NUMBERED_RE)
                  if os.path.basename(p).startswith(f"model_{kind}")]
    wanted = max(1, int(ck.get("LATEST_CHECKPOINT_RESUME_FILE_NUM", 1)))
    valid = []
    for p in candidates:
        why = checkpoint_problem(p)
        if why:
            move_aside(p, why)
            continue
        valid.append(p)
        if len(valid) == wanted:
            break
    if not valid:
        if candidates:
            logging.warning(f"no valid checkpoint in {checkpoint_folder}: training starts from scratch")
        return None
    logging.info(f"Resume from file: {valid[-1]}")
    return valid[-1]


# the launcher's record beside a training run's checkpoints: {"config": the config's name}, which
# VISSL's checkpoints do not keep (tools/export_trunk.py puts it in the export's metadata)
RUN_INFO = "run_info.json"
