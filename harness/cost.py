"""The cost model: how long a cell will run and how much memory it will hold, predicted from
the rows earlier runs left in output folders (the run's own ``--out`` and any ``--history``
folders).

Every ``ok`` attempt of a cell is one observation of its wall time and peak memory. The
model predicts a cell from the observations of its problem and strategy (its *group*), in
the first of these ways that applies (the prediction's :attr:`Prediction.basis`):

1. ``same parameters``: the group has rows of exactly the cell's identity parameters (an
   earlier run of the cell, or of another seed of it): the median of those.
2. ``regression``: least squares (``numpy.linalg.lstsq``) of log wall time (log memory)
   on the parameters that vary among the group's rows: the log of each numeric one whose
   values are all positive (a power law in the swept sizes: n, epochs, width), one
   indicator per value of any other (a solver's name, a data set). Used when the rows
   outnumber the coefficients and the cell's values lie in the fitted families (a
   categorical value the group never ran cannot be regressed on).
3. ``group median``: the median of the group (nothing varies, too few rows).
4. ``default``: the group has no row; :data:`DEFAULT_WALL_S`, or the median of every row
   read when there are rows of other groups. Memory is then unknown (None).

Medians and fits are taken in log space: run times are skewed, and an error is a *factor*.
The model's error is measured on its own rows by leaving out (:class:`ModelError`): one row
at a time for cells run before (how much seeds and machines vary), one parameter
combination at a time for new parameter values (how well the regression extrapolates).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import registry
from .cell import Cell, canonical_json
from .errors import InputError
from .folder import OutputFolder
from .result import OK
from .store import load_cells
from .vocabulary import PROBLEM, STRATEGY, column

DEFAULT_WALL_S = 60.0  # a cell of a problem and strategy no row has seen yet
SEEN, FITTED, GROUP, DEFAULT = "same parameters", "regression", "group median", "default"
BASES = (SEEN, FITTED, GROUP, DEFAULT)
_WALL, _MEMORY = 0, 1  # the two targets, columns of a group's log matrix
_LEAVE_OUT_ROWS = 400  # the error is measured on at most this many rows (it refits per row)
_FLOOR_S = 1e-3  # a wall time of 0 s (a clock's resolution) would be -inf in log space


@dataclass(frozen=True)
class Prediction:
    """What one cell is expected to take: seconds of wall time, peak resident memory (MiB;
    None when no row of its group recorded one) and the way it was predicted (``basis``,
    one of :data:`BASES`)."""

    wall_s: float
    peak_rss_mb: float | None
    basis: str


@dataclass(frozen=True)
class ModelError:
    """The model's error on its own rows, each as a factor: ``exp`` of the root mean square
    of the log residuals (about two in three cells fall within it), with the rows it was
    measured on. ``seen``: a cell run before, predicted from the other rows of its
    parameters; ``new``: a cell of new parameter values, predicted with every row of its
    parameters left out. None where no row could be left out."""

    seen: float | None
    seen_rows: int
    new: float | None
    new_rows: int

    def factor(self, basis: str) -> float | None:
        """The error factor that applies to a prediction of ``basis`` (None: unmeasured,
        and for :data:`DEFAULT`). Where no parameter combination ran twice, a rerun's is
        taken to be at most that of new parameter values."""
        seen = self.seen if self.seen is not None else self.new
        return {SEEN: seen, FITTED: self.new, GROUP: self.new}.get(basis)

    def text(self) -> str:
        if self.seen is None and self.new is None:
            return "not measured (no row to leave out)"

        def part(factor: float | None, rows: int, what: str) -> str:
            return (f"×{factor:.2f} for {what} ({rows} rows left out)" if factor
                    else f"not measured for {what} (no row to leave out)")

        return (f"{part(self.seen, self.seen_rows, 'cells run before')}, "
                f"{part(self.new, self.new_rows, 'new parameter values')}")


def _identity(kind: str, plugin: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The identity parameters of ``params`` by column (where data lie costs nothing):
    all of them for a plug-in this version does not register."""
    table = registry.problems() if kind == PROBLEM else registry.strategies()
    declared = getattr(table.get(plugin), "parameters", None)
    return {column(kind, k): v for k, v in params.items()
            if declared is None or k not in declared or declared[k].identity}


def cell_parameters(problem: str, strategy: str, problem_params: Mapping[str, Any],
                    strategy_params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters that may drive a cell's cost, by column: its identity parameters
    (the seed excluded: seeds are the repetitions the median and fit average over)."""
    return {**_identity(PROBLEM, problem, problem_params),
            **_identity(STRATEGY, strategy, strategy_params)}


def _is_positive_number(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


class _Group:
    """The rows of one (problem, strategy): their parameters and log targets."""

    def __init__(self, params: list[dict[str, Any]], logs: np.ndarray):
        self.params, self.logs = params, logs  # logs: rows × (log wall, log memory)
        self.combos = np.array([canonical_json(p) for p in params])

    def predict(self, params: dict[str, Any], target: int, keep: np.ndarray
                ) -> tuple[float, str] | None:
        """``(log prediction, basis)`` of ``target`` for a cell of ``params`` from the rows
        ``keep`` marks; None when none of them recorded the target."""
        keep = keep & np.isfinite(self.logs[:, target])
        if not keep.any():
            return None
        y = self.logs[:, target]
        same = keep & (self.combos == canonical_json(params))
        if same.any():
            return float(np.median(y[same])), SEEN
        fitted = self._regression(params, y, keep)
        if fitted is not None:
            return fitted, FITTED
        return float(np.median(y[keep])), GROUP

    def _regression(self, params: dict[str, Any], y: np.ndarray, keep: np.ndarray
                    ) -> float | None:
        rows = [p for p, k in zip(self.params, keep, strict=True) if k]
        columns, point = [np.ones(len(rows))], [1.0]
        for key in sorted({k for p in rows for k in p}):
            values = [p.get(key) for p in rows]
            levels = sorted({canonical_json(v) for v in values})
            if len(levels) < 2:
                continue  # the same for every row: nothing to learn from it
            if all(map(_is_positive_number, values)):
                if not _is_positive_number(params.get(key)):
                    return None
                columns.append(np.log([float(v) for v in values]))
                point.append(math.log(params[key]))
                continue
            mine = canonical_json(params.get(key))
            if mine not in levels:
                return None  # a value no row had: no coefficient for it
            text = [canonical_json(v) for v in values]
            for level in levels[1:]:  # the first level is the intercept's
                columns.append(np.array([t == level for t in text], dtype=float))
                point.append(float(mine == level))
        if len(columns) == 1 or len(rows) <= len(columns):
            return None  # nothing varies, or too few rows to fit and leave a residual
        coef, *_ = np.linalg.lstsq(np.column_stack(columns), y[keep], rcond=None)
        return float(np.dot(point, coef))


class CostModel:
    """Predicts cells from the ``ok`` rows of earlier runs (see the module's text)."""

    def __init__(self, rows: pd.DataFrame, sources: Sequence[Path] = ()):
        self.sources, self.rows = tuple(sources), len(rows)
        by_group: dict[tuple[str, str], tuple[list, list]] = {}
        for row in rows.itertuples(index=False):
            given = json.loads(row.params)
            params = cell_parameters(row.problem, row.strategy, given.get(PROBLEM, {}),
                                     given.get(STRATEGY, {}))
            memory = row.peak_rss_mb if _is_positive_number(row.peak_rss_mb) else math.nan
            logs = (math.log(max(float(row.wall_s), _FLOOR_S)), math.log(memory))
            group = by_group.setdefault((row.problem, row.strategy), ([], []))
            group[0].append(params)
            group[1].append(logs)
        self.groups = {k: _Group(p, np.array(y, dtype=float).reshape(-1, 2))
                       for k, (p, y) in by_group.items()}
        walls = rows["wall_s"].to_numpy(dtype=float) if len(rows) else np.array([])
        # with rows of other groups, their median is a better guess than a constant
        self.default_wall_s = float(np.median(walls)) if walls.size else DEFAULT_WALL_S
        self.default_text = (f"{self.default_wall_s:.3g} s, the median of all {walls.size} "
                             f"earlier cells" if walls.size else
                             f"{DEFAULT_WALL_S:g} s, the default (no earlier cells)")
        self._error: ModelError | None = None

    @classmethod
    def from_folders(cls, folders: Iterable[str | Path]) -> CostModel:
        """The model of the ``ok`` rows (every attempt) of ``folders``; one that does not
        exist yet or holds no results adds nothing (a first run's ``--out``)."""
        frames, read = [], []
        # a folder given twice (as --out and --history) is read once
        for folder in {Path(f).resolve(): Path(f) for f in folders}.values():
            if not OutputFolder(folder).is_results_folder():
                continue
            cells = load_cells(folder, all_attempts=True)
            frames.append(cells[cells["status"] == OK][
                ["cell_id", "attempt", "run_id", "problem", "strategy", "params", "wall_s",
                 "peak_rss_mb"]])
            read.append(folder)
        rows = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=["problem", "strategy", "params", "wall_s", "peak_rss_mb"])
        # a folder given as --out and --history, or copied into both, counts once
        rows = rows.drop_duplicates(subset=[c for c in ("cell_id", "attempt", "run_id")
                                            if c in rows.columns])
        return cls(rows.dropna(subset=["wall_s"]), read)

    def predict(self, cell: Cell) -> Prediction:
        """The cell's predicted wall time, peak memory and how they were predicted."""
        group = self.groups.get((cell.problem, cell.strategy))
        if group is None:
            return Prediction(self.default_wall_s, None, DEFAULT)
        params = cell_parameters(cell.problem, cell.strategy, cell.problem_params,
                                 cell.strategy_params)
        everything = np.ones(len(group.params), dtype=bool)
        wall, basis = group.predict(params, _WALL, everything)
        memory = group.predict(params, _MEMORY, everything)
        return Prediction(math.exp(wall), math.exp(memory[0]) if memory else None, basis)

    @property
    def error(self) -> ModelError:
        """The model's wall-time error on its own rows (computed once)."""
        if self._error is None:
            self._error = self._leave_out()
        return self._error

    def _leave_out(self) -> ModelError:
        seen, new = [], []
        total = sum(len(g.params) for g in self.groups.values())
        step = max(1, math.ceil(total / _LEAVE_OUT_ROWS))  # every step-th row, in order
        n = 0
        for group in self.groups.values():
            y = group.logs[:, _WALL]
            for i, params in enumerate(group.params):
                n += 1
                if n % step:
                    continue
                others = np.arange(len(y)) != i
                if (others & (group.combos == group.combos[i])).any():
                    seen.append(group.predict(params, _WALL, others)[0] - y[i])
                elsewhere = group.combos != group.combos[i]
                if elsewhere.any():
                    new.append(group.predict(params, _WALL, elsewhere)[0] - y[i])

        def factor(residuals: list[float]) -> float | None:
            return float(np.exp(np.sqrt(np.mean(np.square(residuals))))) if residuals else None

        return ModelError(factor(seen), len(seen), factor(new), len(new))


def history_folders(paths: Iterable[str], flag: str = "--history") -> list[Path]:
    """The ``--history`` folders, each checked to be an output folder of a run."""
    found = []
    for text in paths:
        path = Path(text)
        if not OutputFolder(path).is_results_folder():
            raise InputError(f"{flag} {text!r} is not allowed; allowed: the output folder "
                             f"of an earlier 'harness run' (it has "
                             f"{OutputFolder(path).cells_dir.name}/ inside)")
        found.append(path)
    return found
