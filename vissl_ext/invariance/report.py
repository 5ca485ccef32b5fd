"""RIS outputs: one JSON per (model, set), a table laid out like the paper's Table 1 (rows =
models, columns = invariance x Top-K), and a bar chart comparing models."""
import glob
import json
import os
from collections import OrderedDict
from typing import List, Sequence

from vissl_ext.invariance.sets import INVARIANCE_TITLES
from vissl_ext.utils_io import atomic_open, write_json_atomic


def result_record(result, model: str, set_name: str, invariance: str, **extra) -> dict:
    rec = OrderedDict(model=model, set=set_name, invariance=invariance)
    rec.update(result.to_dict())
    rec.update(extra)
    return rec


def result_path(out_dir: str, model: str, set_name: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{model}__{set_name}")
    return os.path.join(out_dir, f"ris_{safe}.json")


def write_result(out_dir: str, record: dict) -> str:
    path = result_path(out_dir, record["model"], record["set"])
    write_json_atomic(path, record, indent=1)
    return path


def load_results(paths: Sequence[str]) -> List[dict]:
    """Result records from JSON files or folders of them (ris_*.json)."""
    files = []
    for p in paths:
        files += sorted(glob.glob(os.path.join(p, "ris_*.json"))) if os.path.isdir(p) else [p]
    out = []
    for f in files:
        with open(f) as fh:
            rec = json.load(fh)
        if not isinstance(rec, dict) or "scores" not in rec or "model" not in rec:
            raise ValueError(f"{f}: not a RIS result (written by tools/compute_ris.py or config=benchmark/ris/...)")
        out.append(rec)
    if not out:
        raise ValueError(f"no RIS result files in {list(paths)}")
    return out


def _columns(records: List[dict]):
    invs = list(OrderedDict.fromkeys(r["invariance"] for r in records))
    invs = [i for i in INVARIANCE_TITLES if i in invs] + [i for i in invs if i not in INVARIANCE_TITLES]
    ks = sorted({int(k) for r in records for k in r["scores"]})
    return invs, ks


def _grid(records: List[dict]) -> "OrderedDict[str, Dict]":
    rows = OrderedDict()
    for r in records:
        rows.setdefault(r["model"], {})
        for k, v in r["scores"].items():
            rows[r["model"]][(r["invariance"], int(k))] = v
    return rows


def format_table(records: List[dict]) -> str:
    """Plain-text table: one row per model, columns invariance x Top-K (percent)."""
    invs, ks = _columns(records)
    rows = _grid(records)
    cw = 9
    name_w = max(6, max(len(m) for m in rows)) + 2
    head1 = "".ljust(name_w) + "".join(INVARIANCE_TITLES.get(i, i)[:cw * len(ks) - 1].ljust(cw * len(ks)) for i in invs)
    head2 = "Method".ljust(name_w) + "".join(f"Top-{k}".ljust(cw) for _ in invs for k in ks)
    lines = [head1.rstrip(), head2.rstrip(), "-" * len(head2)]
    for model, vals in rows.items():
        cells = []
        for i in invs:
            for k in ks:
                v = vals.get((i, k))
                cells.append(("-" if v is None else f"{v:.2f}").ljust(cw))
        lines.append((model.ljust(name_w) + "".join(cells)).rstrip())
    return "\n".join(lines)


def plot_chart(records: List[dict], path: str, title: str = "Top-K Representation Invariance Score (%)"):
    """Grouped bar chart (PNG): one group per invariance x Top-K, one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    invs, ks = _columns(records)
    rows = _grid(records)
    groups = [(i, k) for i in invs for k in ks]
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(groups) + 2), 4.5))
    x = np.arange(len(groups))
    for j, (model, vals) in enumerate(rows.items()):
        ys = [vals.get(g, np.nan) for g in groups]
        ax.bar(x + (j - (len(rows) - 1) / 2) * width, ys, width, label=model)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{INVARIANCE_TITLES.get(i, i)}\nTop-{k}" for i, k in groups], fontsize=8)
    ax.set_ylabel("RIS (%)")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return path
