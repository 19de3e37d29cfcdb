"""Grid spec: a YAML study (problems × strategies × parameters × seeds) → validated cells.

See docs/grid.md for the format. Everything is checked before anything runs; the first
problem found is raised as an :class:`~harness.errors.InputError` whose one-line message
names the file, the experiment and the key, and says what is allowed.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from . import registry
from .cell import RESOURCE_PARAMS, Cell, Resources, build_cell, canonical_json, swept_params
from .errors import DataError, InputError, ParamError

TOP_KEYS = ("name", "description", "seeds", "order", "defaults", "experiments")
ORDERS = ("paired", "file")
EXPERIMENT_KEYS = ("problem", "params", "strategies", "seeds", *RESOURCE_PARAMS)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


@dataclass
class Grid:
    """A validated grid: its name, source text, expanded cells (in its run order) and the
    order it asked for (one of :data:`ORDERS`)."""

    name: str
    path: str
    text: str
    cells: list[Cell] = field(default_factory=list)
    description: str = ""
    order: str = "paired"

    @property
    def swept(self) -> frozenset[str]:
        """Result columns (``p_*``/``s_*``) that take more than one value in this grid."""
        return swept_params(self.cells)


def run_order(cells: list[Cell], order: str = "paired") -> list[Cell]:
    """The order a grid runs its cells in, each numbered with its block and place.

    ``paired`` (the default): the cells a claim pairs — one problem instance and seed —
    form a block and run next to each other in time, so slow drift of the machine falls on
    both sides of a pair alike and cancels in their ratio; the strategies within a block
    come in a random order drawn per block (from the block's identity: the same on every
    rerun), so neither is always first. Blocks run seed by seed (every instance of seed 0,
    then of seed 1, …, each seed in file order): a variant's cells then see the drift at
    several times, and a run stopped early holds whole seeds. Where earlier rows predict
    the cells' times, the run takes each seed's blocks longest first instead
    (:func:`longest_first`). ``file``: the file's order,
    seeds innermost (every cell of one strategy variant before the next)."""
    def key(c: Cell) -> str:  # the instance by its identity (not where its data lie)
        declared = registry.problems()[c.problem].parameters
        ident = {k: v for k, v in c.problem_params.items() if declared[k].identity}
        return canonical_json([c.problem, ident, c.seed])

    blocks: dict[str, list[Cell]] = {}
    for c in cells:
        blocks.setdefault(key(c), []).append(c)
    if order == "file":
        index = {k: i for i, k in enumerate(blocks)}
        ordered = [(index[key(c)], c) for c in cells]
    else:
        seeds = sorted({c.seed for c in cells})
        ranked = sorted(blocks, key=lambda k: seeds.index(blocks[k][0].seed))  # stable
        ordered = []
        for i, k in enumerate(ranked):
            members = blocks[k]
            rng = random.Random(hashlib.sha256(k.encode()).hexdigest())
            ordered += [(i, c) for c in rng.sample(members, len(members))]
    return [replace(c, block=b, run_order=n) for n, (b, c) in enumerate(ordered)]


def longest_first(cells: Sequence[Cell], seconds: Mapping[str, float]) -> list[Cell]:
    """``cells`` (a run's cells in the ``paired`` order of :func:`run_order`) with the
    blocks of each seed reordered by their predicted length, longest first: the sum of
    their cells' ``seconds`` (cell_id → predicted seconds, :mod:`harness.cost`).

    A long block started last leaves the other workers idle while it ends; started first,
    the short ones fill in around it. Seeds still run one after the other and a block's
    cells stay together in their drawn order, so a variant's seeds still meet the machine
    at different times (globally longest first runs them side by side, where drift hits
    them alike: ``harness compare`` then cried wolf on 10–16% of simulated A/A runs of the
    demo against 0–2%, bench/README.md) and a run stopped early still holds whole seeds.
    Equal lengths keep the grid's order. Each cell keeps its id and its block (shards split
    by block); the run-order numbers the cells held are handed out again in the new order,
    so a row records the place its cell ran in."""
    blocks: dict[int, list[Cell]] = {}
    for c in cells:
        blocks.setdefault(c.block, []).append(c)
    seeds = sorted({c.seed for c in cells})

    def key(members: list[Cell]) -> tuple[int, float]:
        # rounded to the millisecond: a float sum off in its last bit (another row order
        # in the fit) must not swap two blocks of the same length
        total = round(sum(seconds[c.cell_id] for c in members), 3)
        return seeds.index(members[0].seed), -total

    ordered = [c for members in sorted(blocks.values(), key=key) for c in members]
    places = sorted(c.run_order for c in cells)
    return [replace(c, run_order=n) for n, c in zip(places, ordered, strict=True)]


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader (no code execution) that refuses a key given twice in one mapping."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} is given twice in one mapping", key_node.start_mark
            )
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def load_grid(path: str | Path, *, check_inputs: bool = True) -> Grid:
    """Read, validate and expand a grid file. ``check_inputs`` also checks that the data
    files the problems need exist (before anything runs)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError("no such grid file", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read the grid file ({err})", file=str(path)) from None
    return parse_grid(text, str(path), check_inputs=check_inputs)


def parse_grid(text: str, source: str = "<grid>", *, check_inputs: bool = True) -> Grid:
    """Validate and expand grid ``text``; ``source`` names it in messages."""
    try:
        spec = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise InputError(f"YAML error: {problem}", file=source, where=where) from None
    return _Expander(source, check_inputs).grid(spec, text)


class _Expander:
    def __init__(self, source: str, check_inputs: bool):
        self.source, self.check_inputs = source, check_inputs

    def fail(self, where: str | None, message: str) -> InputError:
        return InputError(message, file=self.source, where=where)

    def grid(self, spec: Any, text: str) -> Grid:
        if not isinstance(spec, dict):
            raise self.fail(None, "the grid must be a mapping with keys " + ", ".join(TOP_KEYS))
        self._known_keys(spec, TOP_KEYS, None)
        name = spec.get("name")
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise self.fail("name", f"{name!r} is not allowed; allowed: a string of letters, "
                                    "digits, '_', '.', '-'")
        seeds = self._seeds(spec.get("seeds", [0]), "seeds")
        defaults = spec.get("defaults") or {}
        if not isinstance(defaults, dict):
            raise self.fail("defaults", "must be a mapping of " + ", ".join(RESOURCE_PARAMS))
        self._known_keys(defaults, tuple(RESOURCE_PARAMS), "defaults")
        resources = self._resources(defaults, {}, "defaults")
        experiments = spec.get("experiments")
        if not isinstance(experiments, list) or not experiments:
            raise self.fail("experiments", "must be a non-empty list of experiments")
        order = spec.get("order", "paired")
        if order not in ORDERS:
            raise self.fail("order", f"{order!r} is not an order; allowed: paired (the cells "
                                     f"of one problem instance and seed side by side, the "
                                     f"default) or file (the file's order, seeds innermost)")
        grid = Grid(name=name, path=self.source, text=text,
                    description=str(spec.get("description") or ""), order=order)
        seen: dict[str, str] = {}
        for i, exp in enumerate(experiments):
            for cell, where in self._experiment(i, exp, name, seeds, resources):
                if cell.cell_id in seen:
                    raise self.fail(where, f"duplicate cell {cell.label()} (also produced by "
                                           f"{seen[cell.cell_id]}); remove one of them")
                seen[cell.cell_id] = where
                grid.cells.append(cell)
        grid.cells = run_order(grid.cells, order)
        return grid

    def _known_keys(self, mapping: dict, allowed: tuple[str, ...], where: str | None) -> None:
        for key in mapping:
            if key not in allowed:
                loc = f"{where}.{key}" if where else str(key)
                raise self.fail(loc, f"unknown key; valid: {', '.join(allowed)}")

    def _seeds(self, value: Any, where: str) -> list[int]:
        ok = (isinstance(value, list) and value
              and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in value))
        if not ok:
            raise self.fail(where, f"{value!r} is not allowed; allowed: a non-empty list of "
                                   "integers ≥ 0")
        if len(set(value)) != len(value):
            raise self.fail(where, f"{value!r} repeats a seed; each seed once")
        return list(value)

    def _resources(self, given: dict, base: dict, where: str) -> dict[str, Any]:
        out = dict(base)
        for key, decl in RESOURCE_PARAMS.items():
            if key in given:
                try:
                    out[key] = decl.coerce(key, given[key])
                except ParamError as err:
                    raise self.fail(f"{where}.{key}", str(err).split(": ", 1)[1]) from None
        device = out.get("device", "auto")
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", device):
            raise self.fail(f"{where}.device", f"{device!r} is not allowed; allowed: auto, cpu, "
                                               "cuda, cuda:N")
        return out

    def _sweep(self, params: Any, where: str) -> list[dict[str, Any]]:
        """Cartesian product of a params mapping whose list values are sweeps."""
        if params is None:
            return [{}]
        if not isinstance(params, dict):
            raise self.fail(where, f"{params!r} is not a mapping of parameter: value(s)")
        axes = []
        for key, value in params.items():
            if isinstance(value, list):
                if not value:
                    raise self.fail(f"{where}.{key}", "empty list; give at least one value")
                if len({repr(v) for v in value}) != len(value):
                    raise self.fail(f"{where}.{key}", f"{value!r} repeats a value; each once")
                axes.append([(key, v) for v in value])
            elif isinstance(value, dict):
                raise self.fail(f"{where}.{key}", f"{value!r}: a mapping is not a parameter value")
            else:
                axes.append([(key, value)])
        return [dict(combo) for combo in itertools.product(*axes)]

    def _validated(self, cls: Any, raw: dict, where: str) -> dict[str, Any]:
        try:
            return cls.validate(raw)
        except ParamError as err:
            raise self.fail(f"{where}.{err.key}", str(err).split(": ", 1)[1]) from None

    def _experiment(self, i: int, exp: Any, grid: str, seeds: list[int], base: dict):
        where = f"experiments[{i}]"
        if not isinstance(exp, dict):
            raise self.fail(where, "an experiment must be a mapping with keys problem, params, "
                                   "strategies")
        self._known_keys(exp, EXPERIMENT_KEYS, where)
        problems = registry.problems()
        pname = exp.get("problem")
        if pname not in problems:
            raise self.fail(f"{where}.problem", f"unknown problem {pname!r}; valid: "
                                                f"{', '.join(problems)}")
        where = f"{where} ({pname})"
        pcls = problems[pname]
        seeds = self._seeds(exp["seeds"], f"{where}.seeds") if "seeds" in exp else seeds
        res = self._resources(exp, base, where)
        strategies = exp.get("strategies")
        if not isinstance(strategies, list) or not strategies:
            raise self.fail(f"{where}.strategies", "must be a non-empty list of strategy names "
                                                   "or {name: {params}}")
        pparams = [self._validated(pcls, raw, f"{where}.params")
                   for raw in self._sweep(exp.get("params"), f"{where}.params")]
        if self.check_inputs:
            for params in {repr(p): p for p in pparams}.values():
                try:
                    pcls(**params).check_inputs()
                except DataError as err:
                    raise self.fail(f"{where}.params", err.message) from None
                except ParamError as err:
                    raise self.fail(f"{where}.params.{err.key}",
                                    str(err).split(": ", 1)[1]) from None
        for j, entry in enumerate(strategies):
            swhere = f"{where}.strategies[{j}]"
            sname, sraw = self._strategy_entry(entry, swhere)
            scls = registry.strategies().get(sname)
            if scls is None:
                valid = [n for n, c in registry.strategies().items() if c.family == pcls.family]
                raise self.fail(swhere, f"unknown strategy {sname!r}; valid for {pname}: "
                                        f"{', '.join(valid)}")
            if scls.family != pcls.family:
                valid = [n for n, c in registry.strategies().items() if c.family == pcls.family]
                raise self.fail(swhere, f"strategy {sname!r} is for {scls.family} problems, not "
                                        f"{pname}; valid: {', '.join(valid)}")
            swhere = f"{swhere} ({sname})"
            sres = self._resources(sraw, res, swhere)
            sraw = {k: v for k, v in sraw.items() if k not in RESOURCE_PARAMS}
            resources = Resources(**sres)
            for sparams in (self._validated(scls, raw, swhere)
                            for raw in self._sweep(sraw, swhere)):
                for pp in pparams:
                    for seed in seeds:
                        yield self._cell(grid, i, pcls, pp, scls, sparams, seed,
                                         resources), swhere

    def _strategy_entry(self, entry: Any, where: str) -> tuple[str, dict]:
        if isinstance(entry, str):
            return entry, {}
        if isinstance(entry, dict) and len(entry) == 1:
            (name, params), = entry.items()
            if params is None:
                params = {}
            if not isinstance(params, dict):
                raise self.fail(f"{where} ({name})", f"{params!r} is not a mapping of parameters")
            return str(name), params
        raise self.fail(where, f"{entry!r} is not a strategy; give a name or {{name: {{params}}}}")

    @staticmethod
    def _cell(grid: str, i: int, pcls: Any, pp: dict, scls: Any, sp: dict, seed: int,
              resources: Resources) -> Cell:
        return build_cell(pcls, pp, scls, sp, seed, grid=grid, experiment=i,
                          resources=resources)
