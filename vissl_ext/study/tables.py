"""The paper's tables from cell results: Table 1 (RIS Top-K per invariance) and Table 3
(downstream), each as Markdown, CSV and a grouped bar chart with the values on the bars."""
import os
from typing import Dict, List, Sequence, Tuple

from vissl_ext.invariance.report import csv_table, grouped_bars, markdown_table, save_figure
from vissl_ext.utils.atomic_io import atomic_open

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


def cells(cols: List[Column], rows) -> Tuple[List[str], List[List[str]]]:
    """(header, rows of cells): values to 2 decimals, "-" where a cell has no result."""
    header = ["Method", *[f"{g} {m}" for g, m in cols]]
    return header, [[model, *["-" if c not in vals else f"{vals[c]:.2f}" for c in cols]] for model, vals in rows.items()]


def write_tables(results: List[dict], models: Sequence[str], out: str) -> Dict[str, str]:
    """table1.{md,csv,png} (RIS) and table3.{md,csv,png} (downstream) for whichever has results."""
    written = {}
    for name, kinds, title, ylabel in (
            ("table1", ("ris",), "Top-K Representation Invariance Score (%) (paper Table 1)", "RIS (%)"),
            ("table3", ("linear", "voc07_svm", "ade20k"), "Downstream (paper Table 3)", "score")):
        cols, rows = grid(results, models, kinds)
        if not cols:
            continue
        header, body = cells(cols, rows)
        for ext, text in (("md", markdown_table(header, body) + "\n"), ("csv", csv_table(header, body))):
            p = os.path.join(out, f"{name}.{ext}")
            with atomic_open(p, "w") as f:
                f.write(text)
            written[f"{name}.{ext}"] = p
        p = os.path.join(out, f"{name}.png")
        bars = {m: [vals.get(c, float("nan")) for c in cols] for m, vals in rows.items()}
        save_figure(grouped_bars([f"{g}\n{m}" for g, m in cols], bars, title, ylabel, percent=name == "table1"), p)
        written[f"{name}.png"] = p
    return written
