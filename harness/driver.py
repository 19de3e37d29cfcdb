"""Run a grid into an output folder: plan what is left, execute, write as results arrive.

Resume rules (docs/executors.md, "Interrupting, preemption and resuming"): a cell whose
latest attempt is ``ok`` is skipped; failed cells (error, timeout, diverged, oom) are rerun
only with ``retry_failed``; preempted, skipped and never-finished cells are always run;
``force`` reruns everything. The driver alone writes, one durable journal record per
finished cell, so an interruption at any moment loses no finished cell.

Stopping from outside (Ctrl-C, or SIGTERM/SIGUSR1, which the CLI turns into
:class:`~harness.errors.Preempted`: Slurm preemption, the time-limit warning, scancel)
kills the in-flight cells and records each as ``preempted``; the next run picks them up
again. While a run goes on, its in-flight file (``OutputFolder.inflight``) lists the cells
it is running (``harness status`` reads it). With a :class:`~harness.shard.Shard` (one
Slurm array task) the driver runs only that shard's cells and shares the folder with the
other shards.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import atomic, location, stopping
from .cell import SCHEMA_VERSION, Cell, cells_to_json
from .errors import Preempted
from .executors import DEFAULT_BACKEND, Executor, Finished, make_executor
from .folder import OutputFolder, read_json
from .grid import Grid, longest_first
from .progress import Progress
from .provenance import run_provenance
from .result import FAILED, OK, PREEMPTED, CellResult
from .rows import cell_row, history_rows
from .shard import Shard
from .store import Store


@dataclass
class Plan:
    """What a run will do with each cell of the grid."""

    to_run: list[Cell]
    attempts: dict[str, int]  # cell_id → attempt number of the next attempt
    already_ok: list[Cell] = field(default_factory=list)
    kept_failed: list[Cell] = field(default_factory=list)  # failed, not retried


def plan_run(cells: Sequence[Cell], store: Store, *, retry_failed: bool = False,
             force: bool = False) -> Plan:
    """Decide which of ``cells`` to run, from the latest status of each cell in ``store``."""
    latest, history = store.latest_status(), store.history_attempts()
    plan = Plan(to_run=[], attempts={})
    for cell in cells:
        status, attempt = latest.get(cell.cell_id, (None, 0))
        plan.attempts[cell.cell_id] = max(attempt, history.get(cell.cell_id, 0)) + 1
        if force or status is None:
            plan.to_run.append(cell)
        elif status == OK:
            plan.already_ok.append(cell)
        elif status in FAILED and not retry_failed:
            plan.kept_failed.append(cell)
        else:
            plan.to_run.append(cell)
    return plan


@dataclass
class RunSummary:
    """How the grid stands after a run."""

    out: Path
    run_id: str
    ran: int
    counts: Counter  # latest status of every grid cell
    failures: list[tuple[Cell, str, str]]  # (cell, status, error) of cells not ok

    @property
    def all_ok(self) -> bool:
        return not self.failures


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def _write_json(path: Path, data: Any) -> None:
    atomic.write_text(path, json.dumps(data, indent=2, default=str))


def write_grid_copy(folder: OutputFolder, grid: Grid) -> None:
    """The folder's copy of the grid's text, which ``harness status`` expands into cells,
    and the cells it expands to (:func:`harness.cell.cells_to_json`), so that ``harness
    status`` need not import the plug-ins (and torch) to expand it."""
    grid_file, cells_file = folder.grid_file, folder.cells_file
    if not grid_file.exists() or grid_file.read_text() != grid.text:
        atomic.write_text(grid_file, grid.text)  # array tasks write it at the same time
    expanded = cells_to_json(grid.text, grid.cells)
    if not cells_file.exists() or cells_file.read_text() != expanded:
        atomic.write_text(cells_file, expanded)


def _write_manifest(store: Store, grid: Grid, run_id: str, info: dict[str, Any]) -> None:
    _write_json(store.folder.manifest(run_id), info)
    write_grid_copy(store.folder, grid)


def _tidy_interrupted(folder: OutputFolder, shard: Shard | None, run_id: str) -> None:
    """Runs the lock we hold shows dead (all others for a whole-grid run; those of our
    shard for a shard's) that left an in-flight list — killed with ``kill -9``, their
    node lost: note in each manifest that it was interrupted, and remove the list (its
    cells read not run already)."""
    for other in folder.run_ids():
        if not folder.inflight(other).exists():
            continue
        info = read_json(folder.manifest(other))
        info = info if isinstance(info, dict) else {}
        if shard is not None and info.get("shard") != str(shard):
            continue  # another shard's run (or one we cannot tell), perhaps alive
        if info and "finished_at" not in info:
            _write_json(folder.manifest(other), {**info, "interrupted": f"found by {run_id}"})
        folder.inflight(other).unlink(missing_ok=True)


def _say_damaged(message: str) -> None:
    """A run goes on without a damaged file (it reruns the cells the file held)."""
    print(f"warning: {message}", file=sys.stderr)


def run_grid(
    grid: Grid, out: str | Path, *, backend: str = DEFAULT_BACKEND, workers: int | None = None,
    address: str | None = None, retry_failed: bool = False, force: bool = False,
    progress: bool | None = None, shard: Shard | None = None,
    executor: Executor | None = None,
    history: Sequence[str | Path] = (),
) -> RunSummary:
    """Run ``grid`` (only ``shard``'s cells if given) into ``out`` and return the summary.
    ``progress``: None draws a bar on a terminal and log lines otherwise; False prints
    nothing. ``history``: output folders of earlier runs the cost model learns from beside
    ``out``: where they predict every cell to run, each seed's blocks run longest first
    (:func:`harness.grid.longest_first`) and the bar's ETA follows the predictions. Under
    the CLI a stop signal takes effect only where stopping is safe (:mod:`harness.stopping`):
    before any cell starts, while the executor waits for its cells, or during the merge of
    the results."""
    with stopping.deferred():
        store = Store(out, on_damage=_say_damaged)
        cells = shard.select(grid.cells) if shard else grid.cells
        with store.lock(shard):
            run = _Run(grid, store, cells, shard, backend=backend, workers=workers,
                       address=address, retry_failed=retry_failed, force=force,
                       executor=executor, history=history)
            run.execute(progress)
        return run.summary()


class _Run:
    """One run of the driver over an output folder it has locked: what it plans, what it
    has in flight, what it wrote, and its manifest."""

    def __init__(self, grid: Grid, store: Store, cells: Sequence[Cell], shard: Shard | None,
                 *, backend: str, workers: int | None, address: str | None,
                 retry_failed: bool, force: bool, executor: Executor | None = None,
                 history: Sequence[str | Path] = ()):
        self.grid, self.store, self.cells, self.shard = grid, store, cells, shard
        self.executor = executor
        self.backend, self.workers, self.address = backend, workers, address
        self.run_id = new_run_id()
        store.create()
        store.open_journal(self.run_id, shard)
        self.plan = plan_run(cells, store, retry_failed=retry_failed, force=force)
        self.predicted = self._predicted([store.out, *history])
        order = grid.order
        if self.predicted and order == "paired":  # the one place the run's order is decided
            self.plan.to_run = longest_first(self.plan.to_run, self.predicted)
            order = "paired, longest first"
        self.provenance = run_provenance()
        self.info: dict[str, Any] = {
            "run_id": self.run_id, "grid": grid.name, "grid_file": grid.path,
            "schema_version": SCHEMA_VERSION, "backend": backend, "workers": workers,
            "address": address, "retry_failed": retry_failed, "force": force,
            "shard": str(shard) if shard else None, **location.job_fields(),
            "started_at": datetime.now(UTC).isoformat(), "cells_in_grid": len(grid.cells),
            "cells_to_run": len(self.plan.to_run), "already_ok": len(self.plan.already_ok),
            "kept_failed": len(self.plan.kept_failed), "driver": store.holder_name(),
            "order": order, "history": [str(h) for h in history],
            **self.provenance,
        }
        _tidy_interrupted(store.folder, shard, self.run_id)
        _write_manifest(store, grid, self.run_id, self.info)
        self.results: dict[str, CellResult] = {}
        self.inflight: dict[str, tuple[Cell, datetime]] = {}
        self.track = store.folder.inflight(self.run_id)

    def execute(self, progress: bool | None) -> None:
        """Run the planned cells and merge the results; on a stop, record the cells in
        flight ``preempted`` and re-raise. The manifest is completed on any exit."""
        swept = self.grid.swept
        bar = Progress(len(self.plan.to_run), label=lambda c: c.label(swept),
                       predicted=self.predicted, workers=self.workers or 1) if (
            progress is not False and self.plan.to_run) else None
        try:
            stopping.pause_point("startup")
            stopping.checkpoint()  # a stop during start-up ends the run before any cell
            if self.plan.to_run:
                self._run_cells(bar)
            with stopping.interruptible():  # the merge is safe to stop anywhere
                self.store.merge_journal()
                stopping.pause_point("merge")
                self.store.compact(self.shard)
        except (KeyboardInterrupt, Preempted) as stop:
            # The executor is closed by now (its workers killed): record what they ran.
            why = (f"{stop.args[0] if stop.args else 'SIGTERM'} (preemption, time limit or "
                   "scancel)" if isinstance(stop, Preempted) else "interrupted (Ctrl-C)")
            for cell, started in self.inflight.values():
                self._write(cell, _preempted(cell, started, self.backend, why))
            self.info["stopped"] = why
            raise
        finally:
            self.store.close()
            if bar:
                bar.close()
            self.track.unlink(missing_ok=True)
            self.info["finished_at"] = datetime.now(UTC).isoformat()
            self.info["cells_finished"] = len(self.results)
            _write_manifest(self.store, self.grid, self.run_id, self.info)

    def _predicted(self, folders: Sequence[str | Path]) -> dict[str, float] | None:
        """Each cell to run → its predicted seconds, from the earlier rows of ``folders``
        (harness.cost), when every one of them has a prediction from its own problem and
        strategy; else None (the run then keeps the grid's order, and the progress bar's
        ETA follows the throughput)."""
        from .cost import DEFAULT, CostModel

        try:
            model = CostModel.from_folders(folders)
            found = {c.cell_id: model.predict(c) for c in self.plan.to_run}
        except Exception:  # an order or an ETA must never stop a run (a damaged file)
            return None
        if not found or any(p.basis == DEFAULT for p in found.values()):
            return None
        return {cell_id: p.wall_s for cell_id, p in found.items()}

    def _run_cells(self, bar: Progress | None) -> None:
        if self.executor is not None:
            self._dispatch(self.executor, bar)
            return
        with make_executor(self.backend, workers=self.workers, address=self.address,
                           log_dir=self.store.folder.logs_dir) as executor:
            self._dispatch(executor, bar)

    def _dispatch(self, executor: Executor, bar: Progress | None) -> None:
        for event in executor.run(self.plan.to_run):
            cell = event.cell
            if not isinstance(event, Finished):
                self.inflight[cell.cell_id] = (cell, datetime.now(UTC))
                _write_json(self.track, sorted(self.inflight))
                if bar:
                    bar.started(cell)
                continue
            # A stop cannot fall between these two lines (deferred): the cell is
            # either in flight (then recorded preempted) or written.
            self.inflight.pop(cell.cell_id, None)
            self._write(cell, event.result)
            _write_json(self.track, sorted(self.inflight))
            if event.result.traceback:
                _log_failure(self.store, cell, event.result)
            if bar:
                bar.finished(cell, event.result)

    def _write(self, cell: Cell, result: CellResult) -> None:
        attempt = self.plan.attempts[cell.cell_id]
        self.store.write_attempt(
            cell_row(cell, result, attempt=attempt, run_id=self.run_id,
                     provenance=self.provenance),
            history_rows(cell, result, attempt=attempt))
        self.results[cell.cell_id] = result

    def summary(self) -> RunSummary:
        latest = self.store.latest_status()
        status = {c.cell_id: latest.get(c.cell_id, ("missing", 0))[0] for c in self.cells}
        not_ok = [c for c in self.cells if status[c.cell_id] != OK]
        errors = _errors(self.store) if not_ok else {}
        failures = [(c, status[c.cell_id], errors.get(c.cell_id, "")) for c in not_ok]
        return RunSummary(out=self.store.out, run_id=self.run_id, ran=len(self.results),
                          counts=Counter(status.values()), failures=failures)


def _preempted(cell: Cell, started: datetime, backend: str, why: str) -> CellResult:
    now = datetime.now(UTC)
    return CellResult(cell_id=cell.cell_id, status=PREEMPTED, error=f"Preempted: {why}",
                      started_at=started, finished_at=now,
                      wall_s=(now - started).total_seconds(), backend=backend,
                      **location.job_fields())


def _errors(store: Store) -> dict[str, str]:
    df = store.cells()
    return dict(zip(df["cell_id"], df["error"].fillna(""), strict=True))


def _log_failure(store: Store, cell: Cell, result: CellResult) -> None:
    """Append the traceback tail of a failed cell to the folder's failures log."""
    with open(store.folder.failures_log, "a") as f:
        f.write(f"=== {datetime.now(UTC).isoformat()} {cell.cell_id} {cell.label()} "
                f"[{result.status}] on {result.worker}\n{result.traceback}\n")
