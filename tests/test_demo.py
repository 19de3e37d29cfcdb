"""The demo grid end to end (the `make demo` study): the paper's claims on its data, and the
report written from it."""

import re

import pytest

from harness.driver import run_grid
from harness.grid import load_grid
from harness.report import write_report
from harness.report.claims import select_strategy
from harness.store import load_cells

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    grid = load_grid("grids/demo.yaml")
    summary = run_grid(grid, out, backend="local", workers=2, progress=False)
    return grid, summary, out, load_cells(out)


def medians(df, selector):
    rows = select_strategy(df, selector)
    return rows.groupby("p_n_features")["test_mse"].median()


def spike(curve, n=512):
    return curve[n] / min(curve[n // 2], curve[2 * n])


def test_every_cell_ok_once(demo):
    grid, summary, _, df = demo
    assert summary.all_ok
    assert len(df) == len(grid.cells) == 180 and df["cell_id"].is_unique
    assert (df["status"] == "ok").all()


def test_min_norm_spikes_at_the_threshold(demo):
    assert spike(medians(demo[3], "min_norm")) >= 3


def test_hybrid_is_within_15_percent_of_the_test_tuned_oracle_at_every_m(demo):
    df = demo[3]
    ratio = medians(df, "hybrid") / medians(df, "tikhonov[select=oracle]")
    assert len(ratio) == 12 and (ratio <= 1.15).all(), ratio.to_dict()


def test_hybrid_has_no_spike_beyond_the_tuned_baselines(demo):
    df = demo[3]
    hybrid = spike(medians(df, "hybrid"))
    oracle = spike(medians(df, "tikhonov[select=oracle]"))
    assert hybrid <= 1.05 * oracle, (hybrid, oracle)


def test_report_files_and_content(demo):
    _, _, out, _ = demo
    written = write_report(out)
    md = (out / "report.md").read_text()
    assert "figures/rfm-digits-n512-double-descent.png" in md
    assert (out / "figures" / "rfm-digits-n512-double-descent.png").stat().st_size > 10_000
    assert len(re.findall(r"\*\*(REPRODUCED|NOT REPRODUCED|NO DATA)\*\*", md)) == 4
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 3
    assert not re.search(r"src=['\"](?!data:)", html)  # self-contained: nothing external
    tex = (out / "tables" / "rfm-digits-n512-test_mse.tex").read_text()
    assert "\\begin{tabular}" in tex and "hybrid" in tex
    assert all(p.exists() for p in written)
