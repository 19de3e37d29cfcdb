"""The harness: grids of scientific-ML problems × training strategies, run anywhere,
recorded in Parquet, reported against the published numbers.

Public API (imported lazily, so ``import harness`` stays cheap)::

    harness.load_grid(path)            # validate + expand a grid file → Grid
    harness.run_grid(grid, out, ...)   # run it (resumable) → RunSummary
    harness.load_cells(out)            # results as a DataFrame (latest attempt per cell)
    harness.load_history(out)          # per-step history, long format
    harness.write_report(out)          # report.md / report.html / figures / tables

Plug-in authors use ``harness.plugin`` (Problem, Strategy, Metric, Fit, RunContext) and
``harness.params`` (Param).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "load_grid": "harness.grid",
    "parse_grid": "harness.grid",
    "Grid": "harness.grid",
    "Cell": "harness.cell",
    "run_grid": "harness.driver",
    "load_cells": "harness.store",
    "load_history": "harness.store",
    "write_report": "harness.report",
    "Problem": "harness.plugin",
    "Strategy": "harness.plugin",
    "Metric": "harness.plugin",
    "Fit": "harness.plugin",
    "RunContext": "harness.plugin",
    "Diverged": "harness.plugin",
    "Param": "harness.params",
    "InputError": "harness.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
