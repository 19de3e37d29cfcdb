"""Progress output: a bar on a terminal, one plain line per cell otherwise."""

import io
import time

from harness.grid import parse_grid
from harness.progress import Progress, fmt_duration
from harness.result import CellResult

GRID = "name: p\nseeds: [0, 1, 2]\nexperiments:\n  - problem: probe\n    strategies: [probe]\n"


def test_terminal_bar_counts_running_failed_and_eta():
    cells = parse_grid(GRID).cells
    stream = io.StringIO()
    bar = Progress(3, stream=stream, tty=True)
    for c in cells[:2]:
        bar.started(c)
    bar.finished(cells[0], CellResult(cell_id=cells[0].cell_id, status="ok", wall_s=1.0))
    bar.finished(cells[1], CellResult(cell_id=cells[1].cell_id, status="error", wall_s=1.0,
                                      error="ValueError: boom"))
    line = bar.bar()
    assert "2/3 · ok 1 · failed 1 · running 0" in line and "ETA" in line
    assert "✗ error" in stream.getvalue() and "ValueError: boom" in stream.getvalue()


def test_plain_lines_when_not_a_terminal():
    cells = parse_grid(GRID).cells
    stream = io.StringIO()
    bar = Progress(3, stream=stream, tty=False)
    bar.started(cells[0])
    bar.finished(cells[0], CellResult(cell_id=cells[0].cell_id, status="ok", wall_s=0.5))
    assert stream.getvalue() == "[1/3] ok          0.5s  probe probe seed=0\n"


def test_durations():
    assert [fmt_duration(s) for s in (5, 75, 3700)] == ["5s", "1m15s", "1h01m"]


def test_eta_from_predictions_follows_the_cells_left_not_the_count():
    """A cheap cell done first must not promise the pace of cheap cells for the costly
    ones left: the ETA is the predicted seconds left at the pace seen so far."""
    cells = parse_grid(GRID).cells
    predicted = {cells[0].cell_id: 1.0, cells[1].cell_id: 1.0, cells[2].cell_id: 8.0}
    bar = Progress(3, stream=io.StringIO(), tty=False, predicted=predicted, workers=2)
    assert bar.eta() == 5.0  # nothing finished: the predicted 10 s over 2 workers
    bar.finished(cells[0], CellResult(cell_id=cells[0].cell_id, status="ok", wall_s=2.0))
    bar.t0 -= 2.0 - (time.monotonic() - bar.t0)  # as if 2 s had passed since the start
    eta = bar.eta()  # 9 predicted seconds left, at 2 s of wall time per predicted second
    assert 17.5 < eta < 18.5, eta
    plain = Progress(3, stream=io.StringIO(), tty=False)  # by count: 2 cells at 2 s each
    plain.finished(cells[0], CellResult(cell_id=cells[0].cell_id, status="ok", wall_s=2.0))
    plain.t0 -= 2.0 - (time.monotonic() - plain.t0)
    assert 3.5 < plain.eta() < 4.5
