"""A/A comparisons on real runs: the same CPU-bound grid run N times, every pair compared
with ``--fail-on-regression PCT`` (the same decision ``harness compare`` makes), then the
same cells made slower by a known factor (the probe's slowdown hook, same cell ids).

    .venv/bin/python bench/aa_compare.py [--runs 8] [--pct 10] [--slowdown 1.2]

Prints how many of the N(N−1)/2 A/A comparisons raised an alarm, and how many of the N
comparisons of each run against the slowed run caught the slowdown.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from harness.solvers.probe import SLOWDOWN

from harness.compare import compare_runs, failed
from harness.driver import run_grid
from harness.grid import parse_grid

GRID = """
name: aa
seeds: [0, 1, 2]
experiments:
  - problem: probe
    params: {size: [10, 20, 30]}
    strategies: [{probe: {spin_s: 0.15}}, {probe: {spin_s: 0.15, steps: 5}}]
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=8)
    ap.add_argument("--pct", type=float, default=10.0)
    ap.add_argument("--slowdown", type=float, default=1.2)
    args = ap.parse_args()
    grid = parse_grid(GRID, "aa.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        runs = []
        start = time.perf_counter()
        for i in range(args.runs):
            out = Path(tmp) / f"run{i}"
            assert run_grid(grid, out, backend="local", workers=2, progress=False).all_ok
            runs.append(out)
        os.environ[SLOWDOWN] = str(args.slowdown)
        slow = Path(tmp) / "slow"
        assert run_grid(grid, slow, backend="local", workers=2, progress=False).all_ok
        del os.environ[SLOWDOWN]
        pairs = [(a, b) for i, a in enumerate(runs) for b in runs[i + 1:]]
        alarms = sum(failed(compare_runs(a, b), args.pct) for a, b in pairs)
        caught = sum(failed(compare_runs(a, slow), args.pct) for a in runs)
        print(f"{args.runs} runs of {len(grid.cells)} cells ({time.perf_counter() - start:.0f} s)")
        print(f"A/A at --fail-on-regression {args.pct:g}: {alarms} alarm(s) in {len(pairs)} "
              f"comparisons ({100 * alarms / len(pairs):.1f}%)")
        print(f"×{args.slowdown:g} slowdown: caught in {caught} of {len(runs)} comparisons")


if __name__ == "__main__":
    main()
