"""One grid run locally and as a Slurm array on the same machine: per-cell times, the run's
span, what the rows say about placement and what the placement audit flags, side by side.

    sudo slurm/local-cluster.sh up          # or HARNESS_SLURM_SPLIT=1 … up (see docs/slurm.md)
    .venv/bin/python bench/slurm_placement.py [--grid GRID] [--keep DIR]

The default grid is the one a new user tried first: peaks, Adam and slimTrain at two
learning rates, 10 epochs, seeds 0–3 (16 cells).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import audit
from harness.store import Store

GRID = """name: peaks16
seeds: [0, 1, 2, 3]
experiments:
  - problem: peaks
    strategies:
      - adam: {lr: [1.0e-3, 1.0e-2], epochs: 10}
      - slimtrain: {lr: [1.0e-3, 1.0e-2], epochs: 10}
"""


def harness(*args: str) -> str:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], check=True,
                          capture_output=True, text=True).stdout


def wait_for(job: str) -> None:
    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True,
                         text=True).stdout.strip():
        time.sleep(2)


def describe(name: str, out: Path, elapsed: float) -> tuple[str, float]:
    df = Store(out).cells()
    span = (df["finished_at"].max() - df["started_at"].min()).total_seconds()
    share = (df["cpu_s"] / (df["cpu_s"] + df["cpu_wait_s"])).median()
    flagged = int(audit.timing_flags(df).notna().sum())
    placement = ", ".join(f"{n} {p}" for p, n in df["placement"].value_counts().items())
    print(f"{name:<6} {len(df)} cells in {elapsed:.0f} s (span {span:.0f} s); wall per cell "
          f"median {df['wall_s'].median():.1f} s [{df['wall_s'].min():.1f}, "
          f"{df['wall_s'].max():.1f}]; CPU share median {share:.2f}; audit flags {flagged}; "
          f"placement: {placement}")
    return placement, float(df["wall_s"].median())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", help="grid file (default: the 16-cell peaks grid)")
    ap.add_argument("--keep", help="write both folders here instead of a temporary folder")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        grid = Path(args.grid) if args.grid else root / "grid.yaml"
        if not args.grid:
            grid.write_text(GRID)
        t0 = time.perf_counter()
        harness("run", str(grid), "--out", str(root / "local"), "--backend", "local", "--quiet")
        _, local = describe("local", root / "local", time.perf_counter() - t0)
        t0 = time.perf_counter()
        job = harness("submit", str(grid), "--out", str(root / "slurm"), "--mode", "array"
                      ).split()[2]
        wait_for(job)
        _, slurm = describe("slurm", root / "slurm", time.perf_counter() - t0)
        print(f"per-cell wall, Slurm ÷ local: {slurm / local:.2f}")


if __name__ == "__main__":
    main()
