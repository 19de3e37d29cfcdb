"""Throughput of 1 and 2 workers on each backend, for CPU-bound cells.

    .venv/bin/python bench/scaling.py [--cells 12] [--spin 5]

A grid of ``--cells`` identical cells that each keep one CPU busy for ``--spin`` seconds
(the ``probe`` strategy's ``spin_s``) runs through ``local`` (1 and 2 workers), ``ray``
(1 and 2 CPUs) and ``mpi`` (2 and 3 ranks: rank 0 drives, the others work, started with
the venv's ``mpiexec``). Printed per run: wall time of the whole command or call (start-up
included: worker processes importing torch, Ray starting, MPI ranks launching), the
*busy span* from the first cell's start to the last cell's end (from the rows), the
throughput over that span, the speed-up of 2 workers over 1 and the parallel efficiency
(both on the span), and the overhead per cell (span × workers / cells − spin).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.driver import run_grid
from harness.grid import parse_grid
from harness.store import load_cells

ROOT = Path(__file__).resolve().parent.parent


def grid_text(cells: int, spin: float) -> str:
    seeds = ", ".join(str(i) for i in range(cells))
    return (f"name: scaling\nseeds: [{seeds}]\ndefaults: {{timeout_s: {10 * spin + 60}}}\n"
            f"experiments:\n  - problem: probe\n    params: {{size: 10}}\n    strategies:\n"
            f"      - probe: {{spin_s: {spin}, steps: 1}}\n")


def busy_span(out: str | Path) -> float:
    """Seconds from the first cell's start to the last cell's end."""
    df = load_cells(out)
    return (df["finished_at"].max() - df["started_at"].min()).total_seconds()


def timed_in_process(backend: str, workers: int, text: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        summary = run_grid(parse_grid(text, "scaling.yaml"), out, backend=backend,
                           workers=workers, progress=False)
        wall = time.perf_counter() - t0
        assert summary.all_ok and len(load_cells(out)) == summary.ran
        return wall, busy_span(out)


def timed_mpi(ranks: int, text: str) -> tuple[float, float]:
    mpiexec = Path(sys.executable).parent / "mpiexec"
    harness = Path(sys.executable).parent / "harness"
    with tempfile.TemporaryDirectory() as tmp:
        grid = Path(tmp) / "scaling.yaml"
        grid.write_text(text)
        t0 = time.perf_counter()
        proc = subprocess.run([str(mpiexec), "-n", str(ranks), str(harness), "run", str(grid),
                               "--out", str(Path(tmp) / "out"), "--backend", "mpi", "--quiet"],
                              cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"mpiexec -n {ranks} failed: {proc.stderr[-2000:]}")
        return wall, busy_span(Path(tmp) / "out")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=12)
    ap.add_argument("--spin", type=float, default=5.0)
    args = ap.parse_args()
    text = grid_text(args.cells, args.spin)
    runs = {backend: [(w, timed_in_process(backend, w, text)) for w in (1, 2)]
            for backend in ("local", "ray")}
    runs["mpi"] = [(w, timed_mpi(w + 1, text)) for w in (1, 2)]  # + rank 0, the driver
    print(f"{args.cells} cells of {args.spin:g} s CPU each")
    print(f"{'backend':<8}{'workers':>8}{'wall s':>8}{'span s':>8}{'cells/min':>10}"
          f"{'speed-up':>9}{'efficiency':>11}{'overhead s/cell':>16}{'wall speed-up':>14}")
    for backend, pairs in runs.items():
        base_wall, base_span = pairs[0][1]
        for workers, (wall, span) in pairs:
            speedup = base_span / span
            print(f"{backend:<8}{workers:>8}{wall:>8.1f}{span:>8.1f}"
                  f"{60 * args.cells / span:>10.2f}{speedup:>9.2f}{speedup / workers:>11.2f}"
                  f"{span * workers / args.cells - args.spin:>16.2f}{base_wall / wall:>14.2f}")


if __name__ == "__main__":
    main()
