"""Progress output: a bar on a terminal, one plain line per cell otherwise."""

import io

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
