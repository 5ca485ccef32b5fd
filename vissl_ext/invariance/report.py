"""RIS outputs: one JSON per (model, set), a table laid out like the paper's Table 1 (rows =
models, columns = invariance x Top-K) as text, Markdown or CSV, and a bar chart comparing
models with each bar's value on it. :func:`write_ris_report` writes all of them from
``{model name: [RIS result records]}`` (the demo, a study runner)."""
import csv
import glob
import io
import json
import os
from collections import OrderedDict
from typing import Dict, List, Mapping, Sequence

from vissl_ext.invariance.sets import INVARIANCE_TITLES
from vissl_ext.utils.atomic_io import atomic_open, write_json_atomic


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


def table_cells(records: List[dict]):
    """(column titles, rows of cells) of the Table 1 layout; values in percent, "-" where a
    model was not scored on a set."""
    invs, ks = _columns(records)
    header = ["Method"] + [f"{INVARIANCE_TITLES.get(i, i)} Top-{k}" for i in invs for k in ks]
    rows = [[model] + ["-" if vals.get((i, k)) is None else f"{vals[(i, k)]:.2f}" for i in invs for k in ks]
            for model, vals in _grid(records).items()]
    return header, rows


def markdown_table(header: List[str], rows: List[List[str]]) -> str:
    """A Markdown table (tabulate's pipe format), the first column left-aligned, the others right."""
    from tabulate import tabulate

    return tabulate(rows, headers=header, tablefmt="pipe", disable_numparse=True,
                    colalign=("left",) + ("right",) * (len(header) - 1))


def csv_table(header: List[str], rows: List[List[str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    return buf.getvalue()


def format_markdown(records: List[dict]) -> str:
    return markdown_table(*table_cells(records))


def format_csv(records: List[dict]) -> str:
    return csv_table(*table_cells(records))


def write_ris_report(results: Mapping[str, Sequence[dict]], out_dir: str, stem: str = "ris_table",
                     title: str = "Top-K Representation Invariance Score (%)", chart: bool = True) -> Dict[str, str]:
    """``{model name: [result records]}`` (records as :func:`result_record` makes them, one per
    set) -> ``<stem>.md``, ``<stem>.csv`` and ``<stem>.png`` in ``out_dir``; model names are the
    dict's keys, in its order. Returns the paths written."""
    records = [dict(r, model=name) for name, recs in results.items() for r in recs]
    if not records:
        raise ValueError("no RIS results to report")
    os.makedirs(out_dir, exist_ok=True)
    paths = {"md": os.path.join(out_dir, f"{stem}.md"), "csv": os.path.join(out_dir, f"{stem}.csv")}
    for kind, text in (("md", format_markdown(records) + "\n"), ("csv", format_csv(records))):
        with atomic_open(paths[kind], "w") as f:
            f.write(text)
    if chart:
        paths["png"] = plot_chart(records, os.path.join(out_dir, f"{stem}.png"), title=title)
    return paths


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


def grouped_bars(labels: List[str], rows: Mapping[str, List[float]], title: str, ylabel: str,
                 percent: bool = False):
    """Grouped bar chart: one group per label, one bar per row (model), each bar labelled with
    its value (NaN: no bar). Returns the matplotlib figure (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(6, 1.3 * len(labels) + 2) + 2, 4.5))  # + the legend beside
    x = np.arange(len(labels))
    for j, (model, ys) in enumerate(rows.items()):
        bars = ax.bar(x + (j - (len(rows) - 1) / 2) * width, ys, width, label=model)
        # every bar carries its value: small differences are readable without the table
        ax.bar_label(bars, labels=["" if np.isnan(y) else f"{y:.1f}" for y in ys], fontsize=7,
                     rotation=90 if len(rows) * len(labels) > 12 else 0, padding=2)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel(ylabel)
    top = max([v for ys in rows.values() for v in ys if v == v] + [1.0])
    ax.set_ylim(0, min(112, top * 1.15 + 2) if percent else top * 1.15)  # room for the labels above the bars
    if percent:
        ax.set_yticks([t for t in ax.get_yticks() if 0 <= t <= 100])
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # beside the bars, never over them
    fig.tight_layout()
    return fig


def save_figure(fig, path: str) -> str:
    """A figure written as a PNG (atomic), then closed."""
    import matplotlib.pyplot as plt

    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return path


def chart_figure(records: List[dict], title: str = "Top-K Representation Invariance Score (%)"):
    """:func:`grouped_bars` of RIS records: one group per invariance x Top-K, one bar per model."""
    invs, ks = _columns(records)
    groups = [(i, k) for i in invs for k in ks]
    rows = {model: [vals.get(g, float("nan")) for g in groups] for model, vals in _grid(records).items()}
    return grouped_bars([f"{INVARIANCE_TITLES.get(i, i)}\nTop-{k}" for i, k in groups], rows, title, "RIS (%)",
                        percent=True)


def plot_chart(records: List[dict], path: str, title: str = "Top-K Representation Invariance Score (%)"):
    """:func:`chart_figure` written as a PNG (atomic)."""
    return save_figure(chart_figure(records, title), path)
