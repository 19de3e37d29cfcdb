"""Report pieces that do not need the demo: renderers, labels, claim selection, failures."""

import numpy as np
import pandas as pd

from harness.driver import run_grid
from harness.grid import parse_grid
from harness.report import write_report
from harness.report.claims import select_strategy
from harness.report.document import Document, Heading, Table, Verdict, to_html, to_latex
from harness.report.document import to_markdown as md
from harness.report.labels import with_labels
from harness.report.outcomes import mark_not_ok, not_ok_by_label, rebounded


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
    # a label names the parameters not at their defaults (select: oracle, regparam:
    # gcv_full are the defaults), whatever the other rows are
    labels = with_labels(df)["label"].tolist()
    assert labels == ["tikhonov", "tikhonov[select=val]", "hybrid", "hybrid[regparam=gcv]"]
    assert with_labels(df.iloc[[1]])["label"].tolist() == ["tikhonov[select=val]"]


def test_a_label_names_every_parameter_not_at_its_default():
    # the grid: adam with epochs: 10 at two learning rates; epochs takes one value
    # but is not the default (20), so it is named; lr = 0.001 is the default, so it is not
    df = pd.DataFrame({"strategy": ["adam", "adam"], "s_lr": [1e-3, 1e-2],
                       "s_epochs": [10.0, 10.0], "s_batch_size": [5, 5],
                       "s_alpha_theta": [None, None]})
    assert with_labels(df)["label"].tolist() == ["adam[epochs=10]", "adam[lr=0.01,epochs=10]"]
    assert with_labels(df, omit=("lr",))["label"].tolist() == ["adam[epochs=10]"] * 2
    # the hybrid's cap is named (it used to be dropped when it took one value)
    hyb = pd.DataFrame({"strategy": ["hybrid"], "s_regparam": ["gcv"], "s_stop": ["none"],
                        "s_max_iter": [1024.0]})
    assert with_labels(hyb)["label"].tolist() == ["hybrid[regparam=gcv,max_iter=1024]"]
    # a row that carries its variant keeps it (written with the defaults of its run)
    stored = df.assign(variant=["adam[lr=0.001,epochs=10]", None])
    assert with_labels(stored)["label"].tolist() == ["adam[lr=0.001,epochs=10]",
                                                     "adam[lr=0.01,epochs=10]"]


def probe_report(out, fail: str, seeds: str = "[0]") -> str:
    """report.md of a real probe grid: the probe, and the probe asked to ``fail``."""
    grid = parse_grid(f"name: r\nseeds: {seeds}\nexperiments:\n  - problem: probe\n"
                      f"    strategies:\n      - probe\n      - probe: {{fail: {fail}}}\n")
    run_grid(grid, out, backend="local", workers=2, progress=False)
    write_report(out)
    return (out / "report.md").read_text()


def test_report_lists_failed_cells(tmp_path):
    text = probe_report(tmp_path, "raise")
    assert "Cells that did not finish ok" in text and "probe asked to fail" in text
    assert "| probe | probe | probe | 2 | 1 | 1 |" in text


def test_diverged_cells_are_counted_beside_their_variant(tmp_path):
    # one variant whose every seed diverges, one that is ok: the metric table keeps the
    # diverged one as a row of its own, marked, instead of dropping it silently
    text = probe_report(tmp_path, "diverge", seeds="[0, 1, 2]")
    header = next(line for line in text.splitlines() if line.startswith("| variant | seeds"))
    assert header.endswith("| not ok |"), header
    assert "| probe[fail=diverge] | – |" in text and text.count("| 3/3 diverged |") == 1
    assert "`not ok`: the variant's cells that did not finish ok" in text


def test_a_training_loss_that_came_back_up_is_marked_but_kept():
    # the spiral's Opt-Disc at rtol 1e-2 (demo, seed 1): 160 → 12.9 (running mean) → 77.7
    steps = np.arange(300)
    back = np.where(steps < 150, 160 * np.exp(-steps / 30), 13 + (steps - 150) / 2.3)
    down = 160 * np.exp(-steps / 30) + 0.01
    noisy = 0.01 * (1 + 0.9 * np.sin(steps))  # near zero and noisy: never over 3× its low
    history = pd.DataFrame([{"cell_id": c, "step": int(s), "split": "train", "metric": "loss",
                             "value": float(v)} for c, vals in (("back", back), ("down", down),
                                                                ("noisy", noisy))
                            for s, v in zip(steps, vals, strict=True)])
    assert rebounded(history) == {"back"}
    cells = pd.DataFrame({"label": ["od", "od", "do"], "status": ["ok", "ok", "ok"],
                          "cell_id": ["back", "down", "noisy"]})
    assert not_ok_by_label(cells, history) == {"od": "1/2 loss rebounded"}


def test_a_variant_with_some_seeds_diverged_is_counted():
    cells = pd.DataFrame({"label": ["adam", "adam", "adam", "adam", "slimtrain"],
                          "status": ["ok", "diverged", "ok", "timeout", "ok"]})
    assert not_ok_by_label(cells) == {"adam": "1/4 diverged, 1/4 timeout"}
    table = mark_not_ok(Table(["variant", "x"], [["adam", 1.0], ["slimtrain", 2.0]]), cells)
    assert table.columns[-1] == "not ok"
    assert table.rows == [["adam", 1.0, "1/4 diverged, 1/4 timeout"], ["slimtrain", 2.0, ""]]
    ok = cells.assign(status="ok")
    assert mark_not_ok(Table(["variant"], [["adam"]]), ok).columns == ["variant"]
