"""`harness status` on a folder of N cells: the time of one call, as a user's terminal
sees it (a fresh process each time), with the folder's expanded grid (`grid.cells.json`,
the normal case) and without it (the grid expanded again, which imports the plug-ins and
torch: the old cost), and their ratio.

    .venv/bin/python bench/status_speed.py [--cells 100] [--calls 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.driver import run_grid
from harness.folder import OutputFolder
from harness.grid import parse_grid


def grid_text(n: int) -> str:
    """``n`` trivial probe cells: n/4 sizes × 4 seeds."""
    sizes = ", ".join(str(s) for s in range(1, n // 4 + 1))
    return (f"name: status-speed\nseeds: [0, 1, 2, 3]\nexperiments:\n  - problem: probe\n"
            f"    params: {{size: [{sizes}]}}\n    strategies:\n      - probe: {{steps: 1}}\n")


def status_seconds(out: Path, calls: int) -> float:
    """Median wall time of ``harness status OUT`` in a new process."""
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "harness.cli", "status", str(out)], check=True,
                       capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cells", type=int, default=100)
    ap.add_argument("--calls", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        run_grid(parse_grid(grid_text(args.cells), "status-speed.yaml"), out,
                 backend="local", progress=False)
        fast = status_seconds(out, args.calls)
        OutputFolder(out).cells_file.unlink()
        slow = status_seconds(out, args.calls)
    print(f"harness status, {args.cells} cells, median of {args.calls} calls: "
          f"{fast:.2f} s with {OutputFolder(out).cells_file.name}, {slow:.2f} s expanding "
          "the grid again "
          f"(ratio {slow / fast:.1f})")


if __name__ == "__main__":
    main()
