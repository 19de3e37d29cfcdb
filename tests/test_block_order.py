"""Blocks longest first: with predicted times a run takes each seed's blocks by their
predicted length, longest first, each block's cells together; without, the grid's order."""

from datetime import UTC, datetime
from itertools import pairwise

from harness.driver import _Run
from harness.grid import longest_first, parse_grid
from harness.result import CellResult
from harness.rows import cell_row, history_rows
from harness.store import Store

# Sizes in ascending order: the grid's own order ends each seed with its largest block.
GRID = """
name: lf
seeds: [0, 1, 2]
{order}
experiments:
  - problem: probe
    params: {{size: [10, 20, 30, 40]}}
    strategies: [probe, {{probe: {{steps: 5}}}}, {{probe: {{steps: 7}}}}]
"""


def seconds(cell) -> float:
    """A predicted time that grows with the size and the steps (every block different)."""
    return cell.problem_params["size"] * cell.strategy_params["steps"] / 10


def check_longest_first(before, after, predicted) -> None:
    """``after`` is ``before`` with each seed's blocks longest first, each block's cells
    contiguous and in their drawn order, ids and blocks kept, run-order numbers reused."""
    assert sorted(c.cell_id for c in after) == sorted(c.cell_id for c in before)
    assert {c.cell_id: c.block for c in after} == {c.cell_id: c.block for c in before}
    assert sorted(c.run_order for c in after) == sorted(c.run_order for c in before)
    assert [c.run_order for c in after] == sorted(c.run_order for c in after)
    runs = [after[0].block] + [b.block for a, b in pairwise(after) if b.block != a.block]
    assert len(runs) == len(set(runs))  # each block's cells contiguous
    for block in runs:
        assert ([c.cell_id for c in after if c.block == block]
                == [c.cell_id for c in before if c.block == block])  # the drawn order
    seeds = [next(c.seed for c in after if c.block == b) for b in runs]
    assert seeds == sorted(seeds)  # still seed by seed
    for seed in set(seeds):
        totals = [sum(predicted[c.cell_id] for c in after if c.block == b)
                  for b in runs if next(c.seed for c in after if c.block == b) == seed]
        assert totals == sorted(totals, reverse=True) and len(set(totals)) > 1


def test_longest_first_takes_each_seeds_blocks_longest_first_and_keeps_them_together():
    cells = parse_grid(GRID.format(order=""), "lf.yaml").cells
    predicted = {c.cell_id: seconds(c) for c in cells}
    after = longest_first(cells, predicted)
    check_longest_first(cells, after, predicted)
    assert [c.problem_params["size"] for c in after[:3]] == [40] * 3  # reversed here
    # equal lengths keep the grid's order: nothing moves
    assert longest_first(cells, dict.fromkeys(predicted, 1.0)) == cells
    # a subset (a resumed run) keeps its own run-order numbers, in the new order
    rest = [c for c in cells if c.seed > 0 and c.strategy_params["steps"] != 7]
    check_longest_first(rest, longest_first(rest, predicted), predicted)


def planned(grid, out) -> tuple[list, dict]:
    """The cells a run of ``grid`` into ``out`` would start, in order, and its manifest
    (forced: every cell runs, so the earlier rows only predict)."""
    store = Store(out)
    with store.lock():
        run = _Run(grid, store, grid.cells, None, backend="local", workers=2,
                   address=None, retry_failed=False, force=True)
        store.close()
    return run.plan.to_run, run.info


def fill(out, cells) -> None:
    """Earlier ``ok`` rows of ``cells`` whose wall times are :func:`seconds`."""
    store = Store(out)
    store.create()
    store.open_journal("earlier")
    now = datetime.now(UTC)
    for cell in cells:
        result = CellResult(cell_id=cell.cell_id, status="ok", started_at=now,
                            finished_at=now, wall_s=seconds(cell),
                            metrics={"probe_value": 1.0, "probe_steps": 3})
        store.write_attempt(cell_row(cell, result, attempt=1, run_id="earlier",
                                     provenance={}), history_rows(cell, result, attempt=1))
    store.merge_journal()


def test_the_run_orders_blocks_by_the_folders_predictions_and_keeps_the_grid_without(
        tmp_path):
    grid = parse_grid(GRID.format(order=""), "lf.yaml")
    fresh, info = planned(grid, tmp_path / "fresh")
    assert fresh == grid.cells and info["order"] == "paired"  # nothing predicts: as today

    fill(tmp_path / "out", grid.cells)
    ordered, info = planned(grid, tmp_path / "out")
    check_longest_first(grid.cells, ordered, {c.cell_id: seconds(c) for c in grid.cells})
    assert info["order"] == "paired, longest first"
    assert planned(grid, tmp_path / "out")[0] == ordered  # the same folder, the same order

    filed = parse_grid(GRID.format(order="order: file"), "lf.yaml")
    fill(tmp_path / "file", filed.cells)
    kept, info = planned(filed, tmp_path / "file")
    assert kept == filed.cells and info["order"] == "file"  # order: file is left alone
