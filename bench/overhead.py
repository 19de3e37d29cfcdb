"""Per-cell overhead of the executors: N trivial cells through `harness run` (local, Ray and
MPI, 1 and 2 slots, the store's writes included) against the same cells run by a plain
loop of `run_cell` in this process, and beside them the bare cost of the engines
themselves: a round trip to a warm Ray actor, and an MPI send/receive pair (a cell out, a
result back) between two ranks.

    .venv/bin/python bench/overhead.py [--cells 1000]

Prints, per backend: total wall time, start-up (to the first result), the steady time per
cell (between the result that ends the first fifth and the last result: workers started
and warm), the overhead per cell in ms of one slot
(steady time per cell × slots − loop time per cell) and the ratio to the loop.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from harness.driver import run_grid
from harness.grid import parse_grid
from harness.runner import run_cell
from harness.store import load_cells

MPIEXEC = Path(sys.executable).parent / "mpiexec"


def grid_text(n: int) -> str:
    seeds = ", ".join(str(i) for i in range(n))
    return (f"name: overhead\nseeds: [{seeds}]\nexperiments:\n  - problem: probe\n"
            "    params: {size: 10}\n    strategies:\n      - probe: {steps: 1}\n")


def run_backend(grid, backend: str, slots: int) -> tuple[float, datetime, Path, object]:
    """Run the grid on ``backend`` with ``slots`` slots; (total s, start, folder, tmp)."""
    tmp = tempfile.TemporaryDirectory()
    out = Path(tmp.name) / "out"
    t0, start = time.perf_counter(), datetime.now(UTC)
    if backend == "mpi":  # rank 0 drives, ``slots`` worker ranks
        grid_file = Path(tmp.name) / "grid.yaml"
        grid_file.write_text(grid.text)
        subprocess.run([str(MPIEXEC), "-n", str(slots + 1), sys.executable, "-m",
                        "harness.cli", "run", str(grid_file), "--out", str(out), "--backend",
                        "mpi", "--quiet"], check=True)
    else:
        assert run_grid(grid, out, backend=backend, workers=slots, progress=False).all_ok
    return time.perf_counter() - t0, start, out, tmp


def bare_ray_call_ms(n: int) -> float:
    """Mean round trip of a method call on a warm Ray actor (a cell out, a result back)."""
    import logging

    import ray

    from harness.executors.ray_executor import ray_environment
    from harness.result import CellResult

    ray_environment()
    ray.init(address="local", num_cpus=1, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING)
    try:
        @ray.remote
        class Echo:
            def call(self, cell):
                return CellResult(cell_id=cell.cell_id, status="ok", metrics={"v": 1.0})

        actor = Echo.remote()
        cell = parse_grid(grid_text(1), "x").cells[0]
        ray.get([actor.call.remote(cell) for _ in range(20)])  # warm
        t0 = time.perf_counter()
        for _ in range(n):
            ray.get(actor.call.remote(cell))
        return (time.perf_counter() - t0) / n * 1e3
    finally:
        ray.shutdown()


def bare_mpi_pair_ms(n: int) -> float:
    """Mean time of an MPI send/receive pair between two ranks (a cell out, a result back),
    measured by this script under ``mpiexec -n 2``."""
    out = subprocess.run([str(MPIEXEC), "-n", "2", sys.executable, __file__, "--pingpong",
                          str(n)], check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def pingpong(n: int) -> None:
    from mpi4py import MPI

    from harness.result import CellResult

    world = MPI.COMM_WORLD
    cell = parse_grid(grid_text(1), "x").cells[0]
    result = CellResult(cell_id=cell.cell_id, status="ok", metrics={"probe_value": 1.0},
                        history=[(0, None, 0.0, "train", "norm", 1.0)])
    for i in range(n + 20):  # 20 to warm up
        if i == 20:
            t0 = time.perf_counter()
        if world.Get_rank() == 0:
            world.send(cell, dest=1, tag=1)
            world.recv(source=1, tag=2)
        else:
            world.recv(source=0, tag=1)
            world.send(result, dest=0, tag=2)
    if world.Get_rank() == 0:
        print(f"{(time.perf_counter() - t0) / n * 1e3:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=1000)
    ap.add_argument("--pingpong", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.pingpong:
        pingpong(args.pingpong)
        return
    grid = parse_grid(grid_text(args.cells), "overhead")

    run_cell(grid.cells[0])  # warm-up: imports torch and the plug-ins
    t0 = time.perf_counter()
    for cell in grid.cells:
        assert run_cell(cell).status == "ok"
    loop_ms = (time.perf_counter() - t0) / len(grid.cells) * 1e3
    print(f"plain loop of run_cell: {loop_ms:.2f} ms per cell ({args.cells} cells)")
    print(f"{'backend':<8}{'slots':>6}{'total s':>9}{'start-up s':>11}{'steady ms/cell':>16}"
          f"{'overhead ms/cell':>18}{'ratio':>7}")
    for backend, slots in (("local", 1), ("local", 2), ("ray", 1), ("ray", 2), ("mpi", 1),
                           ("mpi", 2)):
        total, start, out, tmp = run_backend(grid, backend, slots)
        df = load_cells(out).sort_values("finished_at")
        tmp.cleanup()
        assert len(df) == len(grid.cells) and (df["status"] == "ok").all()
        first = (df["finished_at"].iloc[0] - start).total_seconds()
        skip = len(df) // 5  # the steady state: after the first fifth of the results
        span = (df["finished_at"].iloc[-1] - df["finished_at"].iloc[skip]).total_seconds()
        per_cell = span / (len(df) - 1 - skip) * 1e3
        overhead = per_cell * slots - loop_ms
        print(f"{backend:<8}{slots:>6}{total:>9.1f}{first:>11.1f}{per_cell:>16.2f}"
              f"{overhead:>18.2f}{per_cell * slots / loop_ms:>7.1f}")
    print(f"bare Ray actor call (round trip, warm actor): {bare_ray_call_ms(500):.2f} ms")
    print(f"bare MPI send/receive pair (cell out, result back): "
          f"{bare_mpi_pair_ms(2000):.3f} ms")


if __name__ == "__main__":
    main()
