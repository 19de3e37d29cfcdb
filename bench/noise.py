"""Timing noise with and without placement: identical CPU-bound cells run concurrently,
once placed (the local executor: a cell runs only when its cores are free, pinned to them)
and once the way a pool without placement runs them (every worker takes the next cell at
once, unpinned: with ``cpus: 2`` cells on 2 cores, two cells of two threads each share
two cores).

    .venv/bin/python bench/noise.py [--cells 12] [--cpus 2] [--workers 2]

Prints, for each way, the mean and the coefficient of variation (standard deviation /
mean) of the cells' ``train_s``, and the wall time of the whole batch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time

from harness.driver import run_grid
from harness.grid import parse_grid
from harness.store import load_cells
from harness.worker import CellWorker

GRID = """name: noise
seeds: [{seeds}]
experiments:
  - problem: rfm
    params: {{n_train: 600, n_test: 300, n_features: 2400}}
    cpus: {cpus}
    strategies: [min_norm]
"""


def unplaced(cells, workers: int) -> list[float]:
    """``train_s`` of ``cells`` run by ``workers`` unpinned workers that each take the next
    cell as soon as they are free, whatever it asks for."""
    pool = [CellWorker(f"unplaced-{i}", backend="bench") for i in range(workers)]
    for w in pool:
        w.start()
    todo, lock, times = list(cells), threading.Lock(), []

    def serve(worker: CellWorker) -> None:
        while True:
            with lock:
                if not todo:
                    return
                cell = todo.pop()
            result = worker.execute(cell)
            assert result.status == "ok", result.error
            times.append(result.train_s)

    threads = [threading.Thread(target=serve, args=(w,)) for w in pool]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in pool:
        w.stop()
    return times


def report(label: str, times: list[float], wall: float) -> None:
    mean = statistics.mean(times)
    cv = statistics.stdev(times) / mean
    print(f"{label:<22}{len(times):>6}{mean:>15.3f}{cv:>10.1%}{wall:>10.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=12)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    grid = parse_grid(GRID.format(seeds=", ".join(map(str, range(args.cells))),
                                  cpus=args.cpus), "noise.yaml")
    print(f"{args.cells} rfm cells (n_train 600, 2400 features, min_norm), cpus: {args.cpus}, "
          f"{args.workers} workers")
    print(f"{'':<22}{'cells':>6}{'mean train_s':>15}{'CV':>10}{'wall s':>10}")
    for _ in range(2):  # alternate, so that a drift of the machine hits both alike
        with tempfile.TemporaryDirectory() as out:
            t0 = time.perf_counter()
            assert run_grid(grid, out, backend="local", workers=args.workers,
                            progress=False).all_ok
            wall = time.perf_counter() - t0
            report("placed (local)", load_cells(out)["train_s"].tolist(), wall)
        t0 = time.perf_counter()
        times = unplaced(grid.cells, args.workers)
        report("unplaced pool", times, time.perf_counter() - t0)


if __name__ == "__main__":
    main()
