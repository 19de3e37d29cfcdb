"""The contract every registered problem and strategy must meet (benchopt-style): run on
each one automatically, so a new plug-in is checked the moment its file exists."""

import math

import pytest

from harness import registry
from harness.cell import Resources, make_cell
from harness.params import Param
from harness.runner import run_cell
from harness.schema import cells_schema

PROBLEMS = registry.problems()
STRATEGIES = registry.strategies()
PAIRS = [(p, s) for p, pc in PROBLEMS.items() for s, sc in STRATEGIES.items()
         if pc.family == sc.family]


@pytest.mark.parametrize("name", sorted({**PROBLEMS, **STRATEGIES}))
def test_declaration(name):
    for cls in (PROBLEMS.get(name), STRATEGIES.get(name)):
        if cls is None:
            continue
        assert cls.summary(), f"{name}: needs a docstring"
        assert isinstance(cls.family, str) and cls.family
        for key, param in cls.parameters.items():
            assert isinstance(param, Param) and param.doc, f"{name}.{key}: needs a doc line"
        cls.validate(dict(cls.smoke_params))  # smoke parameters are valid
        if not any(p.required for p in cls.parameters.values()):
            cls.validate({})  # defaults are valid on their own


def test_every_family_pairs_problems_with_strategies():
    for cls in [*PROBLEMS.values(), *STRATEGIES.values()]:
        assert any(p == cls.name or s == cls.name for p, s in PAIRS), cls.name


def test_plugin_columns_do_not_clash():
    names = cells_schema().names
    assert len(names) == len(set(names))


def _smoke_cell(problem, strategy, seed):
    return make_cell(problem, strategy, PROBLEMS[problem].smoke_params,
                     STRATEGIES[strategy].smoke_params, seed, grid="contract",
                     resources=Resources(device="cpu"))


def _values(result, scls, pcls):
    declared = {**pcls.metrics, **scls.metrics}
    return {k: v for k, v in result.metrics.items() if declared[k].unit != "s"}


@pytest.mark.parametrize("problem,strategy", PAIRS)
def test_smoke_run_is_ok_complete_and_deterministic(problem, strategy):
    pcls, scls = PROBLEMS[problem], STRATEGIES[strategy]
    first = run_cell(_smoke_cell(problem, strategy, 0))
    assert first.status == "ok", first.traceback
    assert set(pcls.metrics) <= set(first.metrics), "problem metrics missing"
    assert set(first.metrics) <= set(pcls.metrics) | set(scls.metrics)
    assert all(v is None or isinstance(v, str) or math.isfinite(v)
               for v in first.metrics.values())
    assert first.train_s >= 0 and first.eval_s >= 0 and first.peak_rss_mb > 0
    again = run_cell(_smoke_cell(problem, strategy, 0))
    assert _values(again, scls, pcls) == _values(first, scls, pcls), "not deterministic"
    other = run_cell(_smoke_cell(problem, strategy, 1))
    assert _values(other, scls, pcls) != _values(first, scls, pcls), "seed has no effect"
