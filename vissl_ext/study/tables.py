"""The paper's tables from cell results: Table 1 (RIS Top-K per invariance) and Table 3
(downstream, kNN, DAVIS J&F), each as Markdown, CSV and a grouped bar chart with the values on
the bars. With seeds (several models of one group) a row is a group: mean +- 95% t-interval, the chart has
the interval as error bars and every seed as a dot, and ``paired.{md,csv}`` gives each compared
pair's per-seed differences with their interval."""
import math
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

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


def _fmt_ci(ci: dict) -> str:
    hw = "" if math.isnan(ci["half_width"]) else f" ± {ci['half_width']:.2f}"
    return f"{ci['mean']:.2f}{hw} (n={ci['n']})"


def group_cells(cols: List[Column], rows, groups: Mapping[str, str]):
    """(header, body, {group: {column: t-interval}}): one row per group, mean ± 95% CI half-width."""
    from vissl_ext.study.stats import t_interval

    values: Dict[str, Dict[Column, List[float]]] = {}
    for model, vals in rows.items():
        g = values.setdefault(groups.get(model, model), {})
        for c, v in vals.items():
            g.setdefault(c, []).append(v)
    cis = {g: {c: t_interval(v) for c, v in vals.items()} for g, vals in values.items()}
    header = ["Method", *[f"{g} {m}" for g, m in cols]]
    body = [[g, *["-" if c not in ci else _fmt_ci(ci[c]) for c in cols]] for g, ci in cis.items()]
    return header, body, cis


def paired_rows(cols: List[Column], rows, groups: Mapping[str, str], seeds: Mapping[str, int],
                compare: Sequence[Sequence[str]]):
    """One row per (compared pair, column): per-seed differences a - b and their t-interval."""
    from vissl_ext.study.stats import paired_difference

    out = []
    for a, b in compare:
        for c in cols:
            by = {g: {seeds[m]: vals[c] for m, vals in rows.items() if groups.get(m, m) == g and c in vals}
                  for g in (a, b)}
            if not (set(by[a]) & set(by[b])):
                continue
            d = paired_difference(by[a], by[b])
            out.append({"a": a, "b": b, "evaluation": c[0], "metric": c[1], **d})
    return out


def _ci_bars(cols: List[Column], cis, rows, groups, title: str, ylabel: str):
    """Bars at the group means, the 95% CI as error bars, each seed's value as a dot."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(cis)
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(cols) + 2) + 2, 4.5))
    x = np.arange(len(cols))
    for j, g in enumerate(names):
        xs = x + (j - (len(names) - 1) / 2) * width
        means = [cis[g][c]["mean"] if c in cis[g] else np.nan for c in cols]
        errs = [cis[g][c]["half_width"] if c in cis[g] else np.nan for c in cols]
        bars = ax.bar(xs, means, width, yerr=np.nan_to_num(errs), capsize=3, label=g, alpha=0.8)
        ax.bar_label(bars, labels=["" if np.isnan(m) else f"{m:.1f}" for m in means], fontsize=7, padding=8)
        for xi, c in zip(xs, cols):
            pts = [vals[c] for m, vals in rows.items() if groups.get(m, m) == g and c in vals]
            ax.plot([xi] * len(pts), pts, "k.", markersize=4)
    ax.set_xticks(x)
    ax.set_xticklabels([f"{g}\n{m}" for g, m in cols], fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title + " — mean, 95% CI, seeds", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return fig


def _write_text(path: str, text: str) -> str:
    with atomic_open(path, "w") as f:
        f.write(text)
    return path


def write_tables(results: List[dict], models: Sequence[str], out: str, groups: Optional[Mapping[str, str]] = None,
                 seeds: Optional[Mapping[str, int]] = None, compare: Sequence[Sequence[str]] = ()) -> Dict[str, str]:
    """table1.{md,csv,png} (RIS) and table3.{md,csv,png} (downstream, DAVIS J&F) for whichever has results.
    ``groups`` (model -> method) with a group of several models, or ``compare``: rows per group
    with 95% CIs, and paired.{md,csv,json} of the compared groups (models matched by ``seeds``)."""
    written = {}
    groups = dict(groups or {})
    seeded = bool(compare) or len(set(groups.values())) < len(groups)
    paired = []
    for name, kinds, title, ylabel in (
            ("table1", ("ris",), "Top-K Representation Invariance Score (%) (paper Table 1)", "RIS (%)"),
            ("table3", ("linear", "voc07_svm", "ade20k", "knn", "davis"), "Downstream (paper Table 3)", "score")):
        cols, rows = grid(results, models, kinds)
        if not cols:
            continue
        if seeded:
            header, body, cis = group_cells(cols, rows, groups)
            paired += paired_rows(cols, rows, groups, seeds or {}, compare)
            for ext, text in (("md", markdown_table(header, body) + "\n"), ("csv", csv_table(header, body))):
                written[f"{name}.{ext}"] = _write_text(os.path.join(out, f"{name}.{ext}"), text)
            p = os.path.join(out, f"{name}.png")
            save_figure(_ci_bars(cols, cis, rows, groups, title, ylabel), p)
            written[f"{name}.png"] = p
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
    if paired:
        header = ["Difference", "Column", "Seeds", "Per-seed differences", "Mean", "95% CI"]
        body = [[f"{r['a']} − {r['b']}", f"{r['evaluation']} {r['metric']}", ",".join(map(str, r["seeds"])),
                 ", ".join(f"{d:+.2f}" for d in r["differences"]), f"{r['mean']:+.2f}",
                 "-" if math.isnan(r["half_width"]) else f"[{r['low']:+.2f}, {r['high']:+.2f}]"] for r in paired]
        written["paired.md"] = _write_text(os.path.join(out, "paired.md"), markdown_table(header, body) + "\n")
        written["paired.csv"] = _write_text(os.path.join(out, "paired.csv"), csv_table(header, body))
        from vissl_ext.utils.atomic_io import write_json_atomic

        p = os.path.join(out, "paired.json")
        write_json_atomic(p, [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in r.items()}
                              for r in paired], indent=1)  # JSON has no NaN (one seed: no interval)
        written["paired.json"] = p
    return written
