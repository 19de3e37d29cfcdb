"""Per-cell overhead of the executors: N trivial cells through `harness run` (local and Ray,
1 and 2 slots, Parquet writes included) against the same cells run by a plain loop of
`run_cell` in this process.

    .venv/bin/python bench/overhead.py [--cells 200]

Prints, per backend: total wall time, start-up (to the first result), the steady time per
cell (between the first and the last result), the overhead per cell in ms of one slot
(steady time per cell × slots − loop time per cell) and the ratio to the loop.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime

from harness.driver import run_grid
from harness.grid import parse_grid
from harness.runner import run_cell
from harness.store import load_cells


def grid_text(n: int) -> str:
    seeds = ", ".join(str(i) for i in range(n))
    return (f"name: overhead\nseeds: [{seeds}]\nexperiments:\n  - problem: probe\n"
            "    params: {size: 10}\n    strategies:\n      - probe: {steps: 1}\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=200)
    args = ap.parse_args()
    grid = parse_grid(grid_text(args.cells), "overhead")

    run_cell(grid.cells[0])  # warm-up: imports torch and the plug-ins
    t0 = time.perf_counter()
    for cell in grid.cells:
        assert run_cell(cell).status == "ok"
    loop_ms = (time.perf_counter() - t0) / len(grid.cells) * 1e3
    print(f"plain loop of run_cell: {loop_ms:.2f} ms per cell ({args.cells} cells)")
    print(f"{'backend':<8}{'slots':>6}{'total s':>9}{'start-up s':>11}{'steady ms/cell':>16}"
          f"{'overhead ms/cell':>18}{'ratio':>7}")
    for backend, slots in (("local", 1), ("local", 2), ("ray", 1), ("ray", 2)):
        with tempfile.TemporaryDirectory() as out:
            t0, start = time.perf_counter(), datetime.now(UTC)
            summary = run_grid(grid, out, backend=backend, workers=slots, progress=False)
            total = time.perf_counter() - t0
            assert summary.all_ok
            df = load_cells(out).sort_values("finished_at")
        first = (df["finished_at"].iloc[0] - start).total_seconds()
        span = (df["finished_at"].iloc[-1] - df["finished_at"].iloc[0]).total_seconds()
        per_cell = span / (len(df) - 1) * 1e3
        overhead = per_cell * slots - loop_ms
        print(f"{backend:<8}{slots:>6}{total:>9.1f}{first:>11.1f}{per_cell:>16.2f}"
              f"{overhead:>18.2f}{per_cell * slots / loop_ms:>7.1f}")


if __name__ == "__main__":
    main()
