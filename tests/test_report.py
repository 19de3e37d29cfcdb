"""Report pieces that do not need the demo: renderers, labels, claim selection, failures."""

import pandas as pd

from harness.driver import run_grid
from harness.grid import parse_grid
from harness.report import write_report
from harness.report.claims import select_strategy
from harness.report.document import Document, Heading, Table, Verdict, to_html, to_latex
from harness.report.document import to_markdown as md
from harness.report.labels import with_labels


def test_renderers_escape_and_format(tmp_path):
    table = Table(["m", "a_b"], [[16, 0.123456789], [32, float("nan")]], caption="x & y",
                  name="t")
    doc = Document("T", [Heading("H"), table,
                         Verdict("c", "s", "crit", "1.0", "reproduced", "d")])
    text = md(doc, tmp_path)
    assert "| 16 | 0.1235 |" in text and "| 32 | – |" in text and "**REPRODUCED**" in text
    assert "<td>0.1235</td>" in to_html(doc)
    tex = to_latex(table)
    assert r"a\_b" in tex and r"x \& y" in tex and r"\label{tab:t}" in tex


def test_strategy_selector_uses_defaults_for_unnamed_parameters():
    df = pd.DataFrame({"strategy": ["tikhonov", "tikhonov", "hybrid", "hybrid"],
                       "s_select": ["oracle", "val", None, None],
                       "s_regparam": [None, None, "gcv_full", "gcv"]})
    assert select_strategy(df, "tikhonov").index.tolist() == [0]  # select: oracle by default
    assert select_strategy(df, "tikhonov[select=val]").index.tolist() == [1]
    assert select_strategy(df, "hybrid").index.tolist() == [2]
    assert select_strategy(df, "hybrid[regparam=gcv]").index.tolist() == [3]
    labels = with_labels(df)["label"].tolist()
    assert labels == ["tikhonov[select=oracle]", "tikhonov[select=val]",
                      "hybrid[regparam=gcv_full]", "hybrid[regparam=gcv]"]


def test_report_lists_failed_cells(tmp_path):
    grid = parse_grid("name: r\nexperiments:\n  - problem: probe\n    strategies:\n"
                      "      - probe\n      - probe: {fail: raise}\n")
    run_grid(grid, tmp_path, backend="local", workers=1, progress=False)
    write_report(tmp_path)
    text = (tmp_path / "report.md").read_text()
    assert "Cells that did not finish ok" in text and "probe asked to fail" in text
    assert "| probe | probe | probe | 2 | 1 | 1 |" in text
