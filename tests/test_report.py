"""Report pieces that do not need the demo: renderers, labels, claim selection, failures."""

import os
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from harness.driver import run_grid
from harness.grid import parse_grid
from harness.report import ReportContext, write_report
from harness.report.claims import select_strategy
from harness.report.document import (
    TONES,
    Badge,
    Document,
    Figure,
    Heading,
    Table,
    Verdict,
    to_html,
    to_latex,
)
from harness.report.document import to_markdown as md
from harness.report.forest import position
from harness.report.labels import with_labels
from harness.report.outcomes import mark_not_ok, not_ok_by_label, rebounded
from harness.report.scoreboard import scoreboard

from .conftest import ROOT


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


def run_probe(out, other: str, seeds: str = "[0]") -> None:
    """Run a real probe grid into ``out``: the probe, and the probe with parameters
    ``other`` (a YAML mapping)."""
    grid = parse_grid(f"name: r\nseeds: {seeds}\nexperiments:\n  - problem: probe\n"
                      f"    strategies:\n      - probe\n      - probe: {other}\n")
    run_grid(grid, out, backend="local", workers=2, progress=False)


def probe_report(out, fail: str, seeds: str = "[0]") -> str:
    """report.md of a real probe grid: the probe, and the probe asked to ``fail``."""
    run_probe(out, f"{{fail: {fail}}}", seeds)
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


def verdict(outcome: str, **numbers) -> Verdict:
    return Verdict(f"claim {outcome}", "s", "crit", f"measured {outcome}", outcome,
                   label=f"claim {outcome} (scope)", scope="(scope)", paper="A, B (2024)",
                   section="Family x: study", estimate="e", **numbers)


def test_the_scoreboard_has_a_badge_row_per_covered_verdict_and_lists_the_rest(tmp_path):
    verdicts = [
        verdict("reproduced", value=0.8, low=0.7, high=0.9, kind="ratio", op="<=",
                threshold=1.0, seeds=5, stopped="conclusive"),
        verdict("no data"),
        verdict("not reproduced", value=0.5, low=0.2, high=0.8, kind="difference", op="<=",
                threshold=0.0, seeds=3),
        verdict("inconclusive", value=-2.0, kind="mean", op=">=", threshold=0.0, seeds=1),
        verdict("refused"),
    ]
    ctx = ReportContext(out=tmp_path, cells=pd.DataFrame(), history=pd.DataFrame())
    blocks = scoreboard(verdicts, ctx)
    assert blocks[1].text == ("4 verdicts on this grid: 1 reproduced, 1 not reproduced, "
                              "1 inconclusive, 1 refused. 1 more claim is not covered by this "
                              "grid (listed below).")
    table, figure = blocks[2], blocks[3]
    assert [r[0] for r in table.rows] == [1, 2, 3, 4]  # the no-data claim is no row
    assert table.rows[0][1] == Badge("REPRODUCED", "green")
    assert [r[1].tone for r in table.rows] == ["green", "red", "amber", "purple"]
    row = dict(zip(table.columns, table.rows[0], strict=True))
    assert row["seeds"] == "5 (conclusive)" and row["estimate [95% interval]"] == (
        "ratio 0.8\u00a0[0.7,\u00a00.9]")
    assert "GPU-hours" not in table.columns  # no GPU time: no column
    assert dict(zip(table.columns, table.rows[3], strict=True))["seeds"] == "–"  # refused
    # the forest plot: both axes, the rows it cannot draw named, and why
    assert isinstance(figure, Figure) and figure.path.stat().st_size > 5_000
    assert figure.caption.count("Top: ") == 1
    assert "Not drawn: #3 (no interval), #4 (no estimate)." in figure.caption
    assert blocks[4] == Heading("Not covered by this grid", level=3)
    assert blocks[5].rows[0][:2] == ["claim no data (scope)", "measured no data"]
    # Markdown: the word; HTML: a coloured badge from the one palette
    text, page = md(Document("T", blocks), tmp_path), to_html(Document("T", blocks))
    assert "| 1 | REPRODUCED | claim reproduced (scope) |" in text
    assert "<span class='badge bg-green'>REPRODUCED</span>" in page
    assert f".bg-green{{background:{TONES['green']}}}" in page
    assert scoreboard([verdicts[1]], ctx)[1].text == (
        "No claim can be judged on this grid's cells. 1 more claim is not covered by this "
        "grid (listed below).")


def test_the_forest_plot_turns_each_row_so_that_the_claims_side_is_right():
    # at most 1.0, estimate 0.8: threshold ÷ estimate, 1.25 on the claim's side
    at_most = position(verdict("reproduced", value=0.8, low=0.5, high=1.0, kind="ratio",
                               op="<=", threshold=1.0))
    assert at_most == ("ratio", pytest.approx(1.25), pytest.approx(1.0), pytest.approx(2.0))
    # a reduction of at least 39%, 75% measured: 75 / 39 on the claim's side
    reduction = position(verdict("reproduced", value=75.0, low=73.0, high=77.0,
                                 kind="reduction", op=">=", threshold=39.0))
    assert reduction[0] == "ratio" and reduction[1] == pytest.approx(75 / 39)
    # a difference around 0: half widths, negated for an at-most claim
    diff = position(verdict("not reproduced", value=0.5, low=0.2, high=0.8,
                            kind="difference", op="<=", threshold=0.0))
    assert diff == ("distance", pytest.approx(-5 / 3), pytest.approx(-8 / 3),
                    pytest.approx(-2 / 3))
    assert position(verdict("inconclusive", value=2.0, kind="ratio", op=">=",
                            threshold=1.0)) == ("ratio", 2.0, 2.0, 2.0)  # a point
    assert position(verdict("refused")) == "no estimate"


# claims on the probe grid of `run_probe(out, "{steps: 5}", "[0, 1, 2]")`, one of each
# outcome the scoreboard colours, and one the grid does not cover
PROBE_CLAIMS = """
paper: "Tester, Probing (2025)"
family: probe
claims:
  - id: shrinks
    claim: Five steps shrink the value sixteen-fold.
    check: {kind: ratio, metric: probe_value, strategy: "probe[steps=5]", baseline: probe,
            op: "<=", threshold: 0.1}
  - id: keeps
    claim: Five steps keep at least a tenth of the value.
    check: {kind: ratio, metric: probe_value, strategy: "probe[steps=5]", baseline: probe,
            op: ">=", threshold: 0.1}
  - id: a_64th
    claim: Three steps leave a 64th of the value.
    check: {kind: metric, metric: probe_value, strategy: probe, op: "<=", threshold: 0.015625}
  - id: nine_steps
    claim: Nine steps leave nothing.
    check: {kind: metric, metric: probe_value, strategy: "probe[steps=9]", op: "<=",
            threshold: 0.001}
  - id: grows
    claim: The value grows with the size.
    check: {kind: curve_ratio, metric: probe_value, strategy: probe, over: size, at: 50,
            op: ">=", threshold: 1}
"""


def test_the_report_opens_on_its_coloured_scoreboard_in_a_browser(tmp_path):
    """A real report's first screen in headless Chromium (bench/screenshot_report.sh): the
    scoreboard's badges, in their colours, near the top of the page."""
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        if os.environ.get("HARNESS_REQUIRE_BROWSER") == "1":
            pytest.fail("HARNESS_REQUIRE_BROWSER=1 but no chromium on PATH; install it with: "
                        "apt-get install chromium")
        pytest.skip("no chromium on PATH (apt-get install chromium), or set "
                    "HARNESS_REQUIRE_BROWSER=1 to make this a failure")
    from PIL import Image

    out, claims = tmp_path / "out", tmp_path / "claims"
    claims.mkdir()
    (claims / "probe.yaml").write_text(PROBE_CLAIMS)
    run_probe(out, "{steps: 5}", "[0, 1, 2]")
    write_report(out, claim_dirs=(claims,))
    text = (out / "report.md").read_text()
    board = text.split("## Overview")[0]
    assert "4 verdicts on this grid: 1 reproduced, 1 not reproduced, 1 inconclusive, " \
           "1 refused. 1 more claim is not covered by this grid" in board
    covered, rest = board.split("### Not covered by this grid")
    assert "The value grows with the size." in rest and "grows" not in covered
    assert "figures/scoreboard-estimates.png" in covered
    png = tmp_path / "shot.png"
    proc = subprocess.run(["bash", str(ROOT / "bench" / "screenshot_report.sh"),
                           str(out / "report.html"), str(png), "1280,1600"],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr
    image = Image.open(png).convert("RGB")
    assert image.size == (1280, 1600)
    top = np.asarray(image)[:800].astype(int)  # the first half of the first screen
    for tone in ("green", "red", "amber", "purple"):
        rgb = np.array([int(TONES[tone][i:i + 2], 16) for i in (1, 3, 5)])
        pixels = int((np.abs(top - rgb).max(axis=2) <= 8).sum())
        assert pixels >= 300, (tone, pixels)  # a badge is about 100 × 16 pixels
