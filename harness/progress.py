"""Progress of a run: a one-line bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from collections import Counter
from typing import TextIO

from .cell import Cell
from .result import OK, CellResult


def fmt_duration(seconds: float) -> str:
    """``75`` → ``1m15s``; ``3700`` → ``1h01m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """Counts done / failed / running and estimates the time left.

    ``total`` cells are to run in this invocation; ``label`` turns a cell into a name."""

    def __init__(self, total: int, *, stream: TextIO | None = None, label=None,
                 tty: bool | None = None, predicted: dict[str, float] | None = None,
                 workers: int = 1):
        self.total, self.stream = total, stream or sys.stderr
        # cell_id → predicted seconds (harness.cost), for every cell to run, or None
        self.predicted, self.workers = predicted, max(1, workers)
        self._predicted_done = 0.0
        self.label = label or (lambda c: c.label())
        self.tty = self.stream.isatty() if tty is None else tty
        self.counts: Counter[str] = Counter()
        self.running = 0
        self.t0 = time.monotonic()
        self._last_draw = 0.0

    @property
    def done(self) -> int:
        return sum(self.counts.values())

    def eta(self) -> float | None:
        """Seconds left. With predictions (the cost model): the predicted seconds of the
        cells not finished, at the pace the finished ones went (elapsed wall time per
        predicted second: the workers' parallelism and the machine's speed today), or
        split over the workers before any finished — so a grid whose costly cells come
        last is not promised the pace of its cheap ones. Without: this run's throughput
        of cells so far."""
        elapsed = time.monotonic() - self.t0
        if self.predicted:
            left = sum(self.predicted.values()) - self._predicted_done
            if self._predicted_done > 0:
                return max(0.0, left * elapsed / self._predicted_done)
            return left / self.workers
        if self.done == 0:
            return None
        return (self.total - self.done) / (self.done / elapsed)

    def started(self, cell: Cell) -> None:
        self.running += 1
        self._draw()

    def finished(self, cell: Cell, result: CellResult) -> None:
        self.running = max(0, self.running - 1)
        self.counts[result.status] += 1
        if self.predicted:
            self._predicted_done += self.predicted.get(cell.cell_id, 0.0)
        if self.tty:
            if result.status != OK:
                self._print(f"✗ {result.status:<8} {self.label(cell)}: {result.error}")
            self._draw(force=True)
        else:
            width = len(str(self.total))
            wall = f"{result.wall_s:.1f}s" if result.wall_s is not None else "-"
            line = (f"[{self.done:>{width}}/{self.total}] {result.status:<8} {wall:>7}  "
                    f"{self.label(cell)}")
            if result.status != OK:
                line += f"  ({result.error})"
            self._print(line)

    def bar(self) -> str:
        """The status line: bar, counts, elapsed and ETA."""
        width = 24
        filled = int(width * self.done / self.total) if self.total else width
        failed = self.done - self.counts[OK]
        eta = self.eta()
        return (f"[{'█' * filled}{'░' * (width - filled)}] {self.done}/{self.total} · "
                f"ok {self.counts[OK]} · failed {failed} · running {self.running} · "
                f"{fmt_duration(time.monotonic() - self.t0)} elapsed"
                + (f" · ETA {fmt_duration(eta)}" if eta is not None else ""))

    def _draw(self, force: bool = False) -> None:
        if not self.tty:
            return
        now = time.monotonic()
        if force or now - self._last_draw > 0.2:
            self.stream.write("\r\033[K" + self.bar())
            self.stream.flush()
            self._last_draw = now

    def _print(self, line: str) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + line + "\n")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + self.bar() + "\n")
            self.stream.flush()
