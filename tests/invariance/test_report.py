"""RIS report outputs: Markdown / CSV tables in the paper's Table 1 layout and a labelled chart,
written from {model name: [result records]} (the demo's and a study runner's entry point)."""
import csv

import pytest

from vissl_ext.invariance.report import chart_figure, format_markdown, write_ris_report


def _records():
    # two models, two sets; values chosen so every cell differs
    return {"Sup. R50": [{"model": "x", "set": "aloi_viewpoint", "invariance": "viewpoint", "scores": {"10": 80.0, "25": 75.5}},
                         {"model": "x", "set": "got10k", "invariance": "occlusion", "scores": {"10": 83.25, "25": 78.0}}],
            "MOCOv2": [{"model": "y", "set": "aloi_viewpoint", "invariance": "viewpoint", "scores": {"10": 70.0, "25": 65.0}}]}


def test_markdown_and_csv_follow_table1_layout(tmp_path):
    paths = write_ris_report(_records(), str(tmp_path / "out"), stem="table1", chart=False)
    assert set(paths) == {"md", "csv"}
    md = open(paths["md"]).read().splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in md]
    assert cells[0] == ["Method", "Occlusion Top-10", "Occlusion Top-25", "Viewpoint Top-10", "Viewpoint Top-25"]
    assert cells[1][0].startswith(":-") and all(c.endswith("-:") for c in cells[1][1:])  # numbers right-aligned
    assert cells[2] == ["Sup. R50", "83.25", "78.00", "80.00", "75.50"]  # the dict key names the row
    assert cells[3] == ["MOCOv2", "-", "-", "70.00", "65.00"]  # not scored on a set: "-"
    rows = list(csv.reader(open(paths["csv"])))
    assert rows[0][0] == "Method" and rows[1] == ["Sup. R50", "83.25", "78.00", "80.00", "75.50"]
    assert len(rows) == 3


def test_chart_labels_every_bar_with_its_value(tmp_path):
    recs = [dict(r, model=m) for m, rs in _records().items() for r in rs]
    fig = chart_figure(recs)
    labels = sorted(t.get_text() for t in fig.axes[0].texts if t.get_text())
    assert labels == sorted(["83.2", "78.0", "80.0", "75.5", "70.0", "65.0"])
    paths = write_ris_report(_records(), str(tmp_path), stem="t")
    assert open(paths["png"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_empty_results_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no RIS results"):
        write_ris_report({}, str(tmp_path))
    assert format_markdown([{"model": "a", "set": "s", "invariance": "custom", "scores": {"10": 1.0}}]).count("\n") == 2
