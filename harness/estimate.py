"""The cost of running cells before they run: CPU-hours, GPU-hours, peak memory and wall time
on a number of workers, from the predictions of :mod:`harness.cost`.

``harness estimate`` prints it (:func:`estimate_lines`); ``harness submit`` refuses a
submission above ``--max-cost`` (:class:`Budget`) and sizes ``--time`` from it.
"""

from __future__ import annotations

import heapq
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .cell import Cell
from .cost import BASES, DEFAULT, CostModel, Prediction
from .errors import InputError
from .progress import fmt_duration

_COST = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(cpu-h|gpu-h|s|min|m|h)?\s*$",
                   re.IGNORECASE)
UNITS = {"cpu-h": "CPU-hours", "gpu-h": "GPU-hours", "wall": "seconds of run time"}
_WALL = {"s": 1, "m": 60, "min": 60, "h": 3600}  # a run-time budget: seconds per unit


def makespan(durations: Sequence[float], sizes: Sequence[int], slots: int) -> float:
    """Seconds until the last of the jobs ends when they start in the given order, each as
    soon as ``sizes[i]`` of ``slots`` (cores, or workers) are free, none before the one
    ahead of it: as the executors hand out cells. A job larger than ``slots`` takes all."""
    now, free = 0.0, slots
    running: list[tuple[float, int]] = []  # (end, size), soonest first
    for duration, size in zip(durations, sizes, strict=True):
        size = min(max(size, 1), slots)
        while free < size:
            end, held = heapq.heappop(running)
            now, free = max(now, end), free + held
        heapq.heappush(running, (now + duration, size))
        free -= size
    return max((end for end, _ in running), default=0.0)


@dataclass(frozen=True)
class Estimate:
    """The predicted cost of running ``cells`` (in their run order)."""

    cells: list[Cell]
    predictions: list[Prediction]
    model: CostModel

    @classmethod
    def of(cls, cells: Sequence[Cell], model: CostModel) -> Estimate:
        return cls(list(cells), [model.predict(c) for c in cells], model)

    @property
    def cpu_hours(self) -> float:
        """Wall time × the cores each cell asks for, as the rows' ``cpu_hours``."""
        return sum(p.wall_s * c.resources.cpus
                   for c, p in zip(self.cells, self.predictions, strict=True)) / 3600

    @property
    def gpu_hours(self) -> float:
        return sum(p.wall_s * c.resources.gpus
                   for c, p in zip(self.cells, self.predictions, strict=True)) / 3600

    @property
    def peak_rss_mb(self) -> float | None:
        """The largest predicted peak memory of one cell (None: none known)."""
        return max((p.peak_rss_mb for p in self.predictions if p.peak_rss_mb), default=None)

    def hours(self, unit: str) -> float:
        """The predicted cost in ``unit`` (a key of :data:`UNITS`)."""
        return self.cpu_hours if unit == "cpu-h" else self.gpu_hours

    @property
    def bases(self) -> Counter:
        return Counter(p.basis for p in self.predictions)

    @property
    def unseen(self) -> list[Cell]:
        """The cells whose problem and strategy no row has run (predicted by default)."""
        return [c for c, p in zip(self.cells, self.predictions, strict=True)
                if p.basis == DEFAULT]

    @property
    def error_factor(self) -> float | None:
        """The largest error factor that applies to one of the predictions (None when
        none was measured)."""
        factors = [self.model.error.factor(b) for b in self.bases]
        return max((f for f in factors if f), default=None)

    @property
    def safety(self) -> float:
        """What a time limit multiplies the prediction by: the error factor squared (two
        standard deviations in log space), at least 1.5."""
        return max(1.5, (self.error_factor or 1.5) ** 2)

    def wall_s(self, slots: int, cells: Sequence[Cell] | None = None, *,
               one_per_slot: bool = False) -> float:
        """Seconds to run ``cells`` (default: all) on ``slots`` cores, each cell holding
        the cores it asks for, or (``one_per_slot``) on ``slots`` workers that run one
        cell at a time (MPI ranks)."""
        wanted = {c.cell_id for c in cells} if cells is not None else None
        chosen = [(c, p) for c, p in zip(self.cells, self.predictions, strict=True)
                  if wanted is None or c.cell_id in wanted]
        return makespan([p.wall_s for _, p in chosen],
                        [1 if one_per_slot else c.resources.cpus for c, _ in chosen], slots)

    def caveats(self) -> str:
        """How many cells, the error factor and the cells without history, in words."""
        factor = f", error ×{self.error_factor:.2f} per cell" if self.error_factor else ""
        unseen = (f", {len(self.unseen)} of them without history assumed "
                  f"{fmt_duration(self.model.default_wall_s)} each" if self.unseen else "")
        return f"{len(self.cells)} cells to run{factor}{unseen}"

    def summary(self) -> str:
        """One line: the predicted CPU- and GPU-hours and :meth:`caveats`."""
        return (f"{self.cpu_hours:.3g} CPU-hours, {self.gpu_hours:.3g} GPU-hours "
                f"({self.caveats()})")


@dataclass(frozen=True)
class Budget:
    """A cost limit, ``2cpu-h`` or ``0.5gpu-h`` (a bare number: CPU-hours)."""

    amount: float
    unit: str
    text: str

    @classmethod
    def parse(cls, text: str, flag: str = "--max-cost", command: str = "harness submit",
              *, wall: bool = False) -> Budget:
        """``2cpu-h``, ``0.5gpu-h`` or a bare number (CPU-hours); with ``wall``, also a run
        time, ``90s``, ``30m`` or ``2h`` (unit ``wall``, amount in seconds)."""
        match = _COST.match(text)
        unit = (match[2] or "cpu-h").lower() if match else ""
        if not match or (unit in _WALL and not wall):
            times = ", or a run time: 90s, 30m, 2h" if wall else ""
            raise InputError(f"{flag} {text!r} is not allowed; allowed: a number of "
                             f"CPU-hours, or one with a unit: 2cpu-h, 0.5gpu-h{times}",
                             file=command)
        if unit in _WALL:
            return cls(float(match[1]) * _WALL[unit], "wall", text)
        return cls(float(match[1]), unit, text)

    def check(self, estimate: Estimate, flag: str = "--max-cost") -> None:
        """Refuse (exit 2, one line) when the predicted cost exceeds the limit."""
        predicted = estimate.hours(self.unit)
        if predicted > self.amount:
            raise InputError(f"{flag} {self.text}: the predicted cost is {predicted:.3g} "
                             f"{UNITS[self.unit]} ({estimate.caveats()}), above it; raise "
                             f"{flag} or run fewer cells", file="harness submit")


def estimate_lines(est: Estimate, *, backend: str, workers: int, already_ok: int = 0,
                   kept_failed: int = 0) -> list[str]:
    """What ``harness estimate`` prints."""
    model = est.model
    kept = f", {kept_failed} failed kept (rerun with --retry-failed)" if kept_failed else ""
    lines = [f"{len(est.cells)} cells to run ({already_ok} already ok{kept})"]
    sources = ", ".join(map(str, model.sources)) or "no folder with results"
    lines.append(f"cost model: {model.rows} earlier ok rows ({sources}); error "
                 f"{model.error.text()}")
    counts = est.bases
    lines.append("  predicted by: " + ", ".join(f"{counts[b]} {b}" for b in BASES
                                                 if counts[b]))
    memory = (f"{est.peak_rss_mb:.0f} MiB" if est.peak_rss_mb else "unknown")
    lines.append(f"predicted: {est.cpu_hours:.3g} CPU-hours, {est.gpu_hours:.3g} GPU-hours, "
                 f"peak memory {memory} (largest cell)")
    what = "MPI ranks running cells" if backend == "mpi" else "cores"
    lines.append(f"wall time on {backend} (the cells' own time; start-up not counted), by "
                 f"{what}:")
    for n, wall in _wall_table(est, workers, one_per_slot=backend == "mpi"):
        mark = "  <- --workers" if n == workers else ""
        lines.append(f"  {n:>6}  {fmt_duration(wall):>8}{mark}")
    if est.unseen:
        groups = sorted({f"{c.problem} × {c.strategy}" for c in est.unseen})
        lines.append(f"no history: {len(est.unseen)} cells ({', '.join(groups)}) assumed "
                     f"{model.default_text}; give --history DIR of a run that ran them")
    return lines


def _wall_table(est: Estimate, workers: int, *, one_per_slot: bool
                ) -> list[tuple[int, float]]:
    """Wall time on 1 worker, ``workers`` and multiples of it, until more stop helping."""
    table: list[tuple[int, float]] = []
    counts = sorted({1, workers, *(workers * 2**k for k in range(1, 6))})
    for n in counts:
        wall = est.wall_s(n, one_per_slot=one_per_slot)
        if table and wall >= table[-1][1] and n > workers:
            break
        table.append((n, wall))
    return table
