"""Turn a cell and its result into the rows the store writes (cells and history)."""

from __future__ import annotations

from typing import Any

from . import registry
from .cell import Cell
from .result import CellResult
from .variant import variant_label
from .vocabulary import PROBLEM, STRATEGY, parameter_columns


def cell_row(cell: Cell, result: CellResult, *, attempt: int, run_id: str,
             provenance: dict[str, Any]) -> dict[str, Any]:
    """One row of the cells table for this attempt (see docs/results.md)."""
    family = registry.get("problem", cell.problem).family
    wall = result.wall_s or 0.0
    row: dict[str, Any] = {
        "cell_id": cell.cell_id, "grid": cell.grid, "run_id": run_id,
        "experiment": cell.experiment, "problem": cell.problem, "strategy": cell.strategy,
        "variant": variant_label("strategy", cell.strategy, cell.strategy_params),
        "family": family, "seed": cell.seed, "attempt": attempt, "params": cell.params_json,
        "block": cell.block, "run_order": cell.run_order,
        "status": result.status, "error": result.error, "traceback": result.traceback,
        "started_at": result.started_at, "finished_at": result.finished_at,
        "wall_s": result.wall_s, "setup_s": result.setup_s, "train_s": result.train_s,
        "eval_s": result.eval_s,
        "cpu_hours": wall * cell.resources.cpus / 3600.0,
        "gpu_hours": wall * result.n_gpus / 3600.0,
        "peak_rss_mb": result.peak_rss_mb, "gpu_peak_mb": result.gpu_peak_mb,
        "device": result.device, "n_gpus": result.n_gpus, "gpu_name": result.gpu_name,
        "host": result.host, "node": result.node,
        "scheduler": result.scheduler, "slurm_job_id": result.slurm_job_id,
        "slurm_array_task": result.slurm_array_task,
        "backend": result.backend, "worker": result.worker,
        "rank": result.rank, "cores": result.cores, "gpu_ids": result.gpu_ids,
        "placement": result.placement, "placement_note": result.placement_note,
        "cpu_s": result.cpu_s, "cpu_wait_s": result.cpu_wait_s,
        "timeout_s": cell.resources.timeout_s, "cpus": cell.resources.cpus,
        "gpus": cell.resources.gpus,
        "harness_version": provenance.get("harness_version"),
        "git_sha": provenance.get("git_sha"), "git_dirty": provenance.get("git_dirty"),
        "python": result.python, "torch": result.torch, "cuda": result.cuda,
    }
    row.update(parameter_columns(PROBLEM, cell.problem_params))
    row.update(parameter_columns(STRATEGY, cell.strategy_params))
    row.update(result.metrics)
    return row


def history_rows(cell: Cell, result: CellResult, *, attempt: int) -> list[dict[str, Any]]:
    """The long-format history rows of this attempt."""
    return [
        {"cell_id": cell.cell_id, "attempt": attempt, "step": step, "epoch": epoch,
         "wall_s": wall, "split": split, "metric": metric, "value": value}
        for step, epoch, wall, split, metric, value in result.history
    ]
