"""The README's queries, run as written on a small real random-feature grid, print the
numbers of the report's test-error table; and every row carries the variant the report
names it by."""

import re
from pathlib import Path

import pytest

from harness.driver import run_grid
from harness.grid import parse_grid
from harness.report import write_report
from harness.report.labels import with_labels
from harness.store import load_cells

ROOT = Path(__file__).resolve().parent.parent
FOLDER = "results/demo"  # the folder the README's examples read
# Two configurations of one strategy (grouping by `strategy` would pool them), three seeds
# (a median of three is not their mean), three widths.
GRID = """
name: readme
seeds: [0, 1, 2]
experiments:
  - problem: rfm
    params: {n_train: 64, n_test: 100, n_features: [32, 64, 128]}
    strategies:
      - min_norm
      - hybrid: {regparam: gcv, stop: none, max_iter: 64}
      - hybrid: {regparam: gcv, stop: gcv}
"""
CAPTION = "Test error ‖WZ − C‖²/(2·samples): median over seeds."


def readme_blocks() -> list[str]:
    """The Python code blocks of the README's "Read the results" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Read the results", 1)[1].split("\n### ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def run_block(code: str, out: Path) -> dict:
    """Execute a README block as written, reading ``out`` where it reads results/demo."""
    assert FOLDER in code
    namespace: dict = {}
    exec(compile(code.replace(FOLDER, str(out)), "README.md", "exec"), namespace)
    return namespace


def report_table(md: str, caption: str) -> dict[tuple[int, str], str]:
    """(m, variant) → the text the report prints in the table above ``caption``."""
    lines = md.split(f"*{caption}*", 1)[0].rstrip().splitlines()  # its caption, in italics
    start = max(i for i, line in enumerate(lines) if not line.startswith("|")) + 1
    header, _, *body = (line.strip("|").split(" | ") for line in lines[start:])
    header = [h.strip() for h in header]
    return {(int(r[0]), header[j]): r[j].strip() for r in body for j in range(1, len(r))}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("readme")
    assert run_grid(parse_grid(GRID, "readme.yaml"), out, backend="local", workers=2,
                    progress=False).all_ok
    write_report(out)
    return out, report_table((out / "report.md").read_text(), CAPTION)


def test_rows_carry_the_variant_the_report_names(results):
    out, printed = results
    cells = load_cells(out)
    assert sorted(cells["variant"].unique()) == [
        "hybrid[regparam=gcv,max_iter=64]", "hybrid[regparam=gcv,stop=gcv]", "min_norm"]
    # the stored label is the one computed from the parameters (old folders get it so)
    assert cells["variant"].tolist() == with_labels(cells.drop(columns="variant"))[
        "label"].tolist()
    assert {v for _, v in printed} == set(cells["variant"])


def test_the_readme_queries_print_the_reports_numbers(results):
    out, printed = results
    pandas_block, duckdb_block = readme_blocks()
    table = run_block(pandas_block, out)["test_mse"]
    medians = run_block(duckdb_block, out)["medians"].df()
    assert len(medians) == len(printed) == 9 and table.size == 9
    for row in medians.itertuples():
        text = printed[(row.m, row.variant)]
        assert f"{row.test_mse:.4g}" == text
        assert f"{table.loc[row.m, row.variant]:.4g}" == text
    # the statistic matters: the mean of the three seeds is not what the report prints
    cells = load_cells(out)
    means = cells.groupby(["p_n_features", "variant"])["test_mse"].mean()
    assert sum(f"{means[k]:.4g}" != text for k, text in printed.items()) >= 5
    # and so does the grouping: pooling the two hybrids matches neither
    pooled = cells[cells["strategy"] == "hybrid"].groupby("p_n_features")["test_mse"].median()
    for m, value in pooled.items():
        assert f"{value:.4g}" not in {printed[(m, v)] for v in set(cells["variant"])
                                      if v.startswith("hybrid")}

