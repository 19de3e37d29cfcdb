"""A cell: one (problem, problem params, strategy, strategy params, seed) to run, with the
resources it asks for, and its stable identity."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from . import registry
from .params import Param
from .vocabulary import PROBLEM, STRATEGY, column, parameter_columns

SCHEMA_VERSION = 1  # bump when a change makes old results incomparable (it changes cell ids)

RESOURCE_PARAMS: dict[str, Param] = {
    "device": Param(str, "auto", "auto (CUDA when available), cpu, cuda or cuda:N"),
    "timeout_s": Param(float, 900.0, "wall-clock limit of one cell; it is killed after", low=0,
                       low_open=True),
    "cpus": Param(int, 1, "CPU cores reserved for the cell (and torch threads)", low=1),
    "gpus": Param(float, 0.0, "GPUs reserved for the cell (fractions share a GPU under Ray)",
                  low=0),
}
# Names no plug-in parameter may take: the resource keys and the grid's per-experiment keys.
RESERVED = frozenset({*RESOURCE_PARAMS, "seeds", "problem", "strategies", "params"})


@dataclass(frozen=True)
class Resources:
    """What a cell asks of the machine. Not part of its identity."""

    device: str = "auto"
    timeout_s: float = 900.0
    cpus: int = 1
    gpus: float = 0.0


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces: equal values give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cell_id_of(
    problem: str, problem_params: dict[str, Any], strategy: str,
    strategy_params: dict[str, Any], seed: int,
) -> str:
    """The cell's identity: 16 hex digits of SHA-256 over the canonical JSON of the five
    defining parts and the schema version. Pass identity parameters only."""
    payload = canonical_json({
        "schema": SCHEMA_VERSION, "problem": problem, "problem_params": problem_params,
        "strategy": strategy, "strategy_params": strategy_params, "seed": seed,
    })
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Cell:
    """One unit of work. ``problem_params``/``strategy_params`` are validated and complete
    (defaults filled in); ``cell_id`` hashes their identity parameters."""

    cell_id: str
    grid: str
    experiment: int
    problem: str
    problem_params: dict[str, Any]
    strategy: str
    strategy_params: dict[str, Any]
    seed: int
    resources: Resources = field(default_factory=Resources)
    # Where the grid runs it (not part of its identity): its block — the cells of one
    # problem instance and seed, run side by side — and its place in the run order (the
    # grid's; a run that predicts its cells reorders blocks: grid.longest_first).
    block: int = 0
    run_order: int = 0

    def label(self, swept: frozenset[str] = frozenset()) -> str:
        """Short human name; ``swept`` names the parameters worth showing (default: none),
        by their result columns (:func:`swept_params`)."""
        pp = [f"{k}={v}" for k, v in self.problem_params.items()
              if column(PROBLEM, k) in swept]
        sp = [f"{k}={v}" for k, v in self.strategy_params.items()
              if column(STRATEGY, k) in swept]
        prob = self.problem + (f"[{','.join(pp)}]" if pp else "")
        strat = self.strategy + (f"[{','.join(sp)}]" if sp else "")
        return f"{prob} {strat} seed={self.seed}"

    @property
    def params_json(self) -> str:
        """All parameters as canonical JSON (the ``params`` column)."""
        return canonical_json({"problem": self.problem_params, "strategy": self.strategy_params})


def cells_to_json(grid_text: str, cells: Iterable[Cell]) -> str:
    """The cells of a grid as JSON, keyed by a hash of the grid's text (so that a reader
    can tell a stale expansion from a current one)."""
    return json.dumps({"grid_sha256": hashlib.sha256(grid_text.encode()).hexdigest(),
                       "cells": [asdict(c) for c in cells]}, separators=(",", ":"))


def cells_from_json(text: str, grid_text: str) -> list[Cell] | None:
    """The cells :func:`cells_to_json` wrote, or None when they are not those of
    ``grid_text`` (or unreadable)."""
    try:
        data = json.loads(text)
        if data.get("grid_sha256") != hashlib.sha256(grid_text.encode()).hexdigest():
            return None
        return [Cell(**{**c, "resources": Resources(**c["resources"])}) for c in data["cells"]]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def swept_params(cells: Iterable[Cell]) -> frozenset[str]:
    """The parameter columns (``harness.vocabulary.column``) that take more than one value
    among ``cells``: the parameters that tell two of them apart."""
    values: dict[str, set[str]] = {}
    for c in cells:
        for kind, params in ((PROBLEM, c.problem_params), (STRATEGY, c.strategy_params)):
            for col, v in parameter_columns(kind, params).items():
                values.setdefault(col, set()).add(repr(v))
    return frozenset(k for k, v in values.items() if len(v) > 1)


def build_cell(pcls: Any, pp: dict[str, Any], scls: Any, sp: dict[str, Any], seed: int, *,
               grid: str = "adhoc", experiment: int = 0,
               resources: Resources | None = None) -> Cell:
    """The cell of problem class ``pcls`` and strategy class ``scls`` with *validated*
    parameters: its id hashes the identity parameters only (see ``Param.identity``)."""
    ident_p = {k: v for k, v in pp.items() if pcls.parameters[k].identity}
    ident_s = {k: v for k, v in sp.items() if scls.parameters[k].identity}
    return Cell(cell_id=cell_id_of(pcls.name, ident_p, scls.name, ident_s, seed), grid=grid,
                experiment=experiment, problem=pcls.name, problem_params=pp,
                strategy=scls.name, strategy_params=sp, seed=seed,
                resources=resources or Resources())


def with_seed(cell: Cell, seed: int) -> Cell:
    """The same cell with another ``seed``: a new cell of its own id, as if the grid had
    listed that seed (a run until conclusive buys these)."""
    return build_cell(registry.problems()[cell.problem], cell.problem_params,
                      registry.strategies()[cell.strategy], cell.strategy_params, seed,
                      grid=cell.grid, experiment=cell.experiment, resources=cell.resources)


def make_cell(problem: str, strategy: str, problem_params: dict[str, Any] | None = None,
              strategy_params: dict[str, Any] | None = None, seed: int = 0, *,
              grid: str = "adhoc", resources: Resources | None = None) -> Cell:
    """A cell by plug-in names, as a grid would make it: parameters validated, defaults
    filled in, the same ``cell_id`` (for tests, benchmarks and library use)."""
    pcls, scls = registry.get("problem", problem), registry.get("strategy", strategy)
    return build_cell(pcls, pcls.validate(dict(problem_params or {})), scls,
                      scls.validate(dict(strategy_params or {})), seed, grid=grid,
                      resources=resources)
