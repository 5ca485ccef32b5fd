"""The paper's tables from cell results: Table 1 (RIS Top-K per invariance) and Table 3
(downstream), each as Markdown, CSV and a grouped bar chart with the values on the bars."""
import csv
import io
import os
from typing import Dict, List, Sequence, Tuple

from vissl_ext.utils_io import atomic_open

Column = Tuple[str, str]  # (evaluation, metric)


def grid(results: List[dict], models: Sequence[str], kinds: Sequence[str]):
    """(columns, {model: {column: value}}) for the results of the given evaluation kinds."""
    cols: List[Column] = []
    rows: Dict[str, Dict[Column, float]] = {m: {} for m in models}
    for r in results:
        if r["kind"] not in kinds:
            continue
        group = r["evaluation"]  # unique per study; RIS sets of one invariance stay apart
        for metric, v in r["metrics"].items():
            c = (group, metric)
            if c not in cols:
                cols.append(c)
            rows.setdefault(r["model"], {})[c] = v
    return cols, rows


def to_markdown(cols: List[Column], rows, first: str = "Method") -> str:
    head = "| " + first + " | " + " | ".join(f"{g} {m}" for g, m in cols) + " |"
    sep = "|---|" + "---:|" * len(cols)
    lines = [head, sep]
    for model, vals in rows.items():
        lines.append("| " + model + " | " + " | ".join("-" if c not in vals else f"{vals[c]:.2f}" for c in cols) + " |")
    return "\n".join(lines) + "\n"


def to_csv(cols: List[Column], rows) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["model", *[f"{g} {m}" for g, m in cols]])
    for model, vals in rows.items():
        w.writerow([model, *["" if c not in vals else f"{vals[c]:.4f}" for c in cols]])
    return buf.getvalue()


def chart(cols: List[Column], rows, path: str, title: str, ylabel: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(cols) + 2), 4.5))
    x = np.arange(len(cols))
    for j, (model, vals) in enumerate(rows.items()):
        ys = [vals.get(c, np.nan) for c in cols]
        bars = ax.bar(x + (j - (len(rows) - 1) / 2) * width, ys, width, label=model)
        ax.bar_label(bars, labels=["" if np.isnan(y) else f"{y:.1f}" for y in ys], fontsize=7, padding=2)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{g}\n{m}" for g, m in cols], fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.margins(y=0.15)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def write_tables(results: List[dict], models: Sequence[str], out: str) -> Dict[str, str]:
    """table1.{md,csv,png} (RIS) and table3.{md,csv,png} (downstream) for whichever has results."""
    written = {}
    for name, kinds, title, ylabel in (
            ("table1", ("ris",), "Top-K Representation Invariance Score (%) (paper Table 1)", "RIS (%)"),
            ("table3", ("linear", "voc07_svm", "ade20k"), "Downstream (paper Table 3)", "score")):
        cols, rows = grid(results, models, kinds)
        if not cols:
            continue
        for ext, text in (("md", to_markdown(cols, rows)), ("csv", to_csv(cols, rows))):
            p = os.path.join(out, f"{name}.{ext}")
            with atomic_open(p, "w") as f:
                f.write(text)
            written[f"{name}.{ext}"] = p
        p = os.path.join(out, f"{name}.png")
        chart(cols, rows, p, title, ylabel)
        written[f"{name}.png"] = p
    return written
