"""Run a grid into an output folder: plan what is left, execute, write as results arrive.

Resume rules (DESIGN §4): a cell whose latest attempt is ``ok`` is skipped; failed cells
(error, timeout, diverged, oom) are rerun only with ``retry_failed``; preempted, skipped
and never-finished cells are always run; ``force`` reruns everything. The driver alone
writes, one durable journal record per finished cell, so an interruption at any moment loses
no finished cell.

Stopping from outside (Ctrl-C, or SIGTERM/SIGUSR1, which the CLI turns into
:class:`~harness.errors.Preempted`: Slurm preemption, the time-limit warning, scancel)
kills the in-flight cells and records each as ``preempted``; the next run picks them up
again. While a run goes on, ``runs/<run_id>.inflight.json`` lists the cells it is running
(``harness status`` reads it). With a :class:`~harness.shard.Shard` (one Slurm array task)
the driver runs only that shard's cells and shares the folder with the other shards.
"""

from __future__ import annotations

import json
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import atomic, location
from .cell import SCHEMA_VERSION, Cell
from .errors import Preempted
from .executors import DEFAULT_BACKEND, Finished, make_executor
from .grid import Grid
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
    latest = store.latest_status()
    plan = Plan(to_run=[], attempts={})
    for cell in cells:
        status, attempt = latest.get(cell.cell_id, (None, 0))
        plan.attempts[cell.cell_id] = attempt + 1
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


def write_grid_copy(out: Path, grid: Grid) -> None:
    """``out/grid.yaml``: the grid's text, which ``harness status`` expands into cells."""
    grid_file = out / "grid.yaml"
    if not grid_file.exists() or grid_file.read_text() != grid.text:
        atomic.write_text(grid_file, grid.text)  # array tasks write it at the same time


def _write_manifest(store: Store, grid: Grid, run_id: str, info: dict[str, Any]) -> None:
    _write_json(store.out / "runs" / f"{run_id}.json", info)
    write_grid_copy(store.out, grid)


def inflight_path(out: Path, run_id: str) -> Path:
    """The file listing the cells a run is running now (removed when the run ends)."""
    return out / "runs" / f"{run_id}.inflight.json"


def run_grid(
    grid: Grid, out: str | Path, *, backend: str = DEFAULT_BACKEND, workers: int | None = None,
    address: str | None = None, retry_failed: bool = False, force: bool = False,
    progress: bool | None = None, shard: Shard | None = None,
) -> RunSummary:
    """Run ``grid`` (only ``shard``'s cells if given) into ``out`` and return the summary.
    ``progress``: None draws a bar on a terminal and log lines otherwise; False prints
    nothing."""
    store = Store(out)
    run_id = new_run_id()
    cells = shard.select(grid.cells) if shard else grid.cells
    with store.lock(str(shard) if shard else None):
        store.create()
        store.open_journal(run_id, str(shard) if shard else None)
        plan = plan_run(cells, store, retry_failed=retry_failed, force=force)
        prov = run_provenance()
        info: dict[str, Any] = {
            "run_id": run_id, "grid": grid.name, "grid_file": grid.path,
            "schema_version": SCHEMA_VERSION, "backend": backend, "workers": workers,
            "address": address, "retry_failed": retry_failed, "force": force,
            "shard": str(shard) if shard else None, **location.job_fields(),
            "started_at": datetime.now(UTC).isoformat(), "cells_in_grid": len(grid.cells),
            "cells_to_run": len(plan.to_run), "already_ok": len(plan.already_ok),
            "kept_failed": len(plan.kept_failed), "driver": store.holder_name(), **prov,
        }
        _write_manifest(store, grid, run_id, info)
        swept = grid.swept
        bar = Progress(len(plan.to_run), label=lambda c: c.label(swept)) if (
            progress is not False and plan.to_run) else None
        results: dict[str, CellResult] = {}
        inflight: dict[str, tuple[Cell, datetime]] = {}
        track = inflight_path(store.out, run_id)

        def write(cell: Cell, result: CellResult) -> None:
            attempt = plan.attempts[cell.cell_id]
            store.write_attempt(
                cell_row(cell, result, attempt=attempt, run_id=run_id, provenance=prov),
                history_rows(cell, result, attempt=attempt))
            results[cell.cell_id] = result

        try:
            if plan.to_run:
                with make_executor(backend, workers=workers, address=address,
                                   log_dir=store.out / "logs") as executor:
                    for event in executor.run(plan.to_run):
                        cell = event.cell
                        if not isinstance(event, Finished):
                            inflight[cell.cell_id] = (cell, datetime.now(UTC))
                            _write_json(track, sorted(inflight))
                            if bar:
                                bar.started(cell)
                            continue
                        # Off the in-flight list before the write: a stop in between
                        # leaves the cell unrecorded (rerun), never recorded twice.
                        inflight.pop(cell.cell_id, None)
                        write(cell, event.result)
                        _write_json(track, sorted(inflight))
                        if event.result.traceback:
                            _log_failure(store, cell, event.result)
                        if bar:
                            bar.finished(cell, event.result)
            store.compact(str(shard) if shard else None)
        except (KeyboardInterrupt, Preempted) as stop:
            # The executor is closed by now (its workers killed): record what they ran.
            why = "SIGTERM/SIGUSR1 (preemption, time limit or scancel)" if isinstance(
                stop, Preempted) else "interrupted (Ctrl-C)"
            for cell, started in inflight.values():
                write(cell, _preempted(cell, started, backend, why))
            info["stopped"] = why
            raise
        finally:
            store.close()
            if bar:
                bar.close()
            track.unlink(missing_ok=True)
            info["finished_at"] = datetime.now(UTC).isoformat()
            info["cells_finished"] = len(results)
            _write_manifest(store, grid, run_id, info)
    latest = store.latest_status()
    status = {c.cell_id: latest.get(c.cell_id, ("missing", 0))[0] for c in cells}
    counts = Counter(status.values())
    not_ok = [c for c in cells if status[c.cell_id] != OK]
    errors = _errors(store) if not_ok else {}
    failures = [(c, status[c.cell_id], errors.get(c.cell_id, "")) for c in not_ok]
    return RunSummary(out=store.out, run_id=run_id, ran=len(results), counts=counts,
                      failures=failures)


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
    """Append the traceback tail of a failed cell to ``<out>/logs/failures.log``."""
    with open(store.out / "logs" / "failures.log", "a") as f:
        f.write(f"=== {datetime.now(UTC).isoformat()} {cell.cell_id} {cell.label()} "
                f"[{result.status}] on {result.worker}\n{result.traceback}\n")
