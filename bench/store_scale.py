"""The results store at scale: N trivial cells through `harness run` (local backend), then
the readers on the result.

    .venv/bin/python bench/store_scale.py [--cells 100000] [--workers 2] [--out DIR]

Prints the store's cost of recording one finished cell (the journal append, fsync
included, and the periodic merge of the journal into Parquet, which falls on one cell in
10 000) over the first and the last tenth of the cells and their ratio, the journal's bytes per
cell, the peak disk use of the output folder during the run (sampled every 0.2 s) per
cell, the size after the final compaction, and the wall time of `harness status`,
`load_cells`, `load_history` and `harness report` on the finished folder.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness.driver import run_grid
from harness.grid import parse_grid
from harness.store import Store, load_cells, load_history


def grid_text(n: int) -> str:
    """``n`` trivial probe cells: 100 sizes × n/100 seeds (one step, no sleep)."""
    sizes = min(100, n)
    seeds = ", ".join(str(i) for i in range(n // sizes))
    return (f"name: store-scale\nseeds: [{seeds}]\nexperiments:\n  - problem: probe\n"
            f"    params: {{size: [{', '.join(str(s) for s in range(1, sizes + 1))}]}}\n"
            "    strategies:\n      - probe: {steps: 1}\n")


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


class Sampler(threading.Thread):
    """Peak disk use of a folder, sampled in the background."""

    def __init__(self, folder: Path):
        super().__init__(daemon=True)
        self.folder, self.peak, self.done = folder, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            try:
                self.peak = max(self.peak, disk_bytes(self.folder))
            except FileNotFoundError:  # a file merged away while listed
                continue


def timed(label: str, fn) -> float:
    t0 = time.perf_counter()
    fn()
    took = time.perf_counter() - t0
    print(f"  {label:<28}{took:8.2f} s")
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="default: a temporary folder")
    args = ap.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="store-scale-")) / "out"
    grid_file = out.parent / "store-scale.yaml"
    grid_file.parent.mkdir(parents=True, exist_ok=True)
    grid_file.write_text(grid_text(args.cells))
    grid = parse_grid(grid_file.read_text(), str(grid_file))
    n = len(grid.cells)

    costs: list[float] = []
    journal_bytes: list[int] = []
    write = Store.write_attempt

    def timed_write(self, row, history):  # the store's own cost, measured around it
        t0 = time.perf_counter()
        write(self, row, history)
        costs.append(time.perf_counter() - t0)
        if self._segment is not None:
            journal_bytes.append(self._segment.path.stat().st_size / self._segment.records)

    Store.write_attempt = timed_write
    sampler = Sampler(out)
    sampler.start()
    t0 = time.perf_counter()
    summary = run_grid(grid, out, backend="local", workers=args.workers, progress=False)
    run_s = time.perf_counter() - t0
    sampler.done.set()
    sampler.join()
    Store.write_attempt = write
    assert summary.all_ok and summary.ran == n, summary.counts

    window = max(1, n // 10)
    start_ms = statistics.mean(costs[:window]) * 1e3
    end_ms = statistics.mean(costs[-window:]) * 1e3
    final = disk_bytes(out)
    print(f"{n} trivial cells, local backend, {args.workers} workers: run {run_s:.0f} s "
          f"({run_s / n * 1e3:.2f} ms per cell)")
    print(f"  write cost, first {window} cells {start_ms:8.3f} ms per cell (mean)")
    print(f"  write cost, last {window} cells  {end_ms:8.3f} ms per cell (mean)")
    print(f"  ratio last / first              {end_ms / start_ms:8.2f}")
    print(f"  journal on disk                 {max(journal_bytes):8.0f} bytes per cell (max)")
    print(f"  peak disk use during the run    {sampler.peak / n:8.0f} bytes per cell "
          f"({sampler.peak / 2**20:.1f} MiB)")
    print(f"  after compaction                {final / n:8.0f} bytes per cell "
          f"({final / 2**20:.1f} MiB)")
    harness = [sys.executable, "-m", "harness.cli"]
    timed("harness status", lambda: subprocess.run([*harness, "status", str(out)],
                                                    check=True, capture_output=True))
    timed("load_cells", lambda: load_cells(out))
    timed("load_history", lambda: load_history(out))
    timed("harness report", lambda: subprocess.run([*harness, "report", str(out)],
                                                    check=True, capture_output=True))


if __name__ == "__main__":
    main()
