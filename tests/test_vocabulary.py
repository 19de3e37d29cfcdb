"""The results vocabulary: the column of every declared parameter and metric, names users
write resolved (and refused when they could mean two columns), roles checked for agreement,
and a scratch family — whose problem and strategy both have a learning rate ``lr`` and
whose strategy declares a per-iteration time ``step_s`` — run, reported and compared with
no engine edit."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from harness import registry, vocabulary
from harness.errors import InputError, RegistrationError
from harness.params import Param
from harness.plugin import Metric, Problem, Strategy
from harness.report.checks import metric_check
from harness.report.claims import ClaimRefused
from harness.report.selection import parse_selector
from harness.rows import cell_row
from harness.vocabulary import (
    DATA_SOURCE,
    DATASET,
    METRIC,
    PER_ITERATION,
    PROBLEM,
    STRATEGY,
    AmbiguousName,
    column,
    parameter,
    resolve,
)

from .test_families import _harness, _package

# -- the vocabulary of the registered plug-ins ----------------------------------------------


def test_every_declared_parameter_and_metric_has_its_column_and_round_trips():
    terms = vocabulary.terms()
    for table in (registry.problems(), registry.strategies()):
        for cls in table.values():
            for name, param in cls.parameters.items():
                col = column(cls.kind, name)
                assert parameter(col) == (cls.kind, name)
                term = terms[col]
                assert (term.kind, term.name, term.type, term.role) == (
                    cls.kind, name, param.kind, param.role)
                assert cls in term.owners
            for name, metric in cls.metrics.items():
                assert parameter(name) is None  # a metric is its own column
                term = terms[name]
                assert (term.kind, term.type, term.unit, term.role) == (
                    METRIC, metric.kind, metric.unit, metric.role)
                assert cls in term.owners
    assert column(PROBLEM, "lr") != column(STRATEGY, "lr")
    assert parameter("seed") is None and parameter("test_mse") is None


def test_the_roles_the_engine_relies_on_are_declared_by_the_families():
    assert vocabulary.role_columns(DATASET) == [column(PROBLEM, "dataset")]
    assert vocabulary.role_columns(DATA_SOURCE) == ["data_source"]
    assert vocabulary.role_columns(PER_ITERATION) == ["epoch_s", "iter_s"]
    assert all(r.meaning for r in vocabulary.ROLES)


def test_a_cell_row_holds_each_parameter_in_its_own_column():
    from harness.cell import make_cell
    from harness.result import CellResult

    cell = make_cell("probe", "probe", {"size": 7}, {"steps": 4}, seed=1)
    row = cell_row(cell, CellResult(cell.cell_id, status="ok"), attempt=1, run_id="r",
                   provenance={})
    assert row[column(PROBLEM, "size")] == 7 and row[column(STRATEGY, "steps")] == 4
    assert vocabulary.parameters_in(row, STRATEGY) == cell.strategy_params
    assert vocabulary.parameters_in(row, PROBLEM) == cell.problem_params


# -- names users write ----------------------------------------------------------------------

# spiral declares a problem parameter lr, adam (separable) a strategy parameter lr; the
# engine does not care that they are of two families.
BOTH = pd.DataFrame({"problem": ["spiral", "spiral"], "strategy": ["adam", "adam"],
                     "p_lr": [0.01, 0.02], "s_lr": [0.1, 0.1], "test_mse": [1.0, 2.0]})
STRATEGY_ONLY = pd.DataFrame({"problem": ["peaks"], "strategy": ["adam"], "p_lr": [None],
                              "s_lr": [0.1]})


def test_a_full_column_name_is_taken_as_is():
    assert resolve("s_lr", BOTH) == "s_lr" and resolve("p_lr", BOTH) == "p_lr"
    assert resolve("test_mse", BOTH) == "test_mse"
    assert resolve("nothing", BOTH) is None and resolve("s_nothing", BOTH) is None


def test_a_bare_name_of_one_kind_is_resolved():
    # peaks declares no lr: the (empty) p_lr column of a folder shared with spiral is not it
    assert resolve("lr", STRATEGY_ONLY) == "s_lr"
    assert resolve("lr", BOTH[["problem", "strategy", "p_lr"]]) == "p_lr"


def test_a_bare_name_of_both_kinds_is_refused_naming_both_columns():
    with pytest.raises(AmbiguousName) as err:
        resolve("lr", BOTH)
    assert isinstance(err.value, InputError)
    assert "p_lr" in str(err.value) and "s_lr" in str(err.value)
    # in a claim it refuses the claim (a verdict), never the whole report
    with pytest.raises(ClaimRefused, match=r"p_lr.*s_lr"):
        metric_check({"metric": "test_mse", "strategy": "adam", "over": "lr", "op": "<",
                      "threshold": 5}, BOTH.assign(status="ok", seed=0), None)
    # what a table prints for a column is a name that resolves back to it
    assert vocabulary.shown_name("p_lr", BOTH) == "p_lr"
    assert vocabulary.shown_name("s_lr", STRATEGY_ONLY) == "lr"


def test_a_selector_is_compiled_once_with_typed_values_and_strategy_keys():
    sel = parse_selector("adam[lr=1e-3,s_epochs!=3]")
    assert sel.strategy is registry.strategies()["adam"]
    assert [(c.key, c.column, c.op, c.value) for c in sel.conditions] == [
        ("lr", "s_lr", "=", 0.001), ("epochs", "s_epochs", "!=", 3)]
    assert parse_selector("nobody[x=1]").unknown() == ["x"]
    with pytest.raises(ValueError, match="problem parameter"):
        parse_selector("adam[p_lr=0.1]")
    with pytest.raises(ValueError, match="selector"):
        parse_selector("adam[lr=0.1")


# -- declarations that disagree -------------------------------------------------------------


def test_a_column_declared_with_another_role_is_refused_at_registration():
    with pytest.raises(RegistrationError) as err:
        class NoRole(Problem):
            """A data set parameter without the data set role."""
            name = "vocabulary_no_role"
            family = "vocabulary_test"
            parameters = {"dataset": Param(str, "x", "a data set")}  # noqa: RUF012

            def build(self, seed, run): ...

            def evaluate(self, task, solution, run): ...
    message = str(err.value)
    assert "'p_dataset'" in message and "with no role" in message
    assert "with role 'dataset'" in message and "vocabulary_no_role" in message
    assert "vocabulary_no_role" not in registry.problems()


def test_a_metric_with_another_role_or_unit_is_refused_and_so_is_a_parameter_spelling():
    for metric in (Metric(float, "not per iteration", "s"),
                   Metric(float, "per iteration, not in s", role=PER_ITERATION)):
        with pytest.raises(RegistrationError, match="'iter_s'"):
            class Clash(Strategy):
                """Clashes with the node strategies' iter_s."""
                name = "vocabulary_clash"
                family = "vocabulary_test"
                metrics = {"iter_s": metric}  # noqa: RUF012

                def fit(self, task, run): ...
    with pytest.raises(RegistrationError, match="spelled like a parameter column"):
        class Spelled(Strategy):
            """A metric that would read as a problem parameter."""
            name = "vocabulary_spelled"
            family = "vocabulary_test"
            metrics = {column(PROBLEM, "x"): Metric(float, "x")}  # noqa: RUF012

            def fit(self, task, run): ...
    assert not {"vocabulary_clash", "vocabulary_spelled"} & set(registry.strategies())
    with pytest.raises(TypeError, match="Role"):
        Param(float, 1.0, "x", role="dataset")


# -- a scratch family, run, reported and compared through the command line ------------------

SCRATCH = '''
"""A scratch family: a problem and a strategy that both have a learning rate."""
import time
from typing import ClassVar

import numpy as np

from harness.family import declare_family
from harness.params import Param
from harness.plugin import Fit, Metric, Problem, Strategy
from harness.vocabulary import PER_ITERATION

declare_family("scratch", "Scratch: two learning rates", claims=__name__)


class Target(Problem):
    """Reach a target near 1 by steps scaled by the problem's own rate."""
    name = "scratch_target"
    family = "scratch"
    parameters: ClassVar = {"lr": Param(float, 0.5, "scale of every step", low=0)}
    metrics: ClassVar = {"gap": Metric(float, "distance of the solution to the target")}

    def build(self, seed, run):
        return 1 + 0.05 * np.random.default_rng(seed).normal(), self.params["lr"]

    def evaluate(self, task, solution, run):
        return {"gap": abs(solution - task[0])}


class Descent(Strategy):
    """Gradient descent on (w - target)^2."""
    name = "scratch_descent"
    family = "scratch"
    parameters: ClassVar = {"lr": Param(float, 0.5, "step size", low=0)}
    metrics: ClassVar = {"step_s": Metric(float, "median time of one step (s)", "s",
                                          role=PER_ITERATION)}

    def fit(self, task, run):
        target, scale = task
        w, times = 0.0, []
        for step in range(20):
            start = time.perf_counter()
            w -= scale * self.params["lr"] * 2 * (w - target)
            times.append(time.perf_counter() - start)
            run.log("loss", (w - target) ** 2, step=step)
        return Fit(w, {"step_s": float(np.median(times))})
'''

CLAIMS = """
paper: "Scratch (2026)"
family: scratch
claims:
  - id: by_strategy_rate
    claim: "At every step size the gap is below 0.5."
    source: "the test"
    check: {kind: metric, metric: gap, strategy: scratch_descent, over: s_lr, op: "<",
            threshold: 0.5}
  - id: larger_steps_help
    claim: "At problem rate 1, step size 0.2 closes the gap faster than 0.1."
    source: "the test"
    check: {kind: ratio, metric: gap, strategy: "scratch_descent[s_lr=0.2]",
            baseline: "scratch_descent[lr=0.1]", where: {p_lr: 1.0}, op: "<", threshold: 1}
  - id: ambiguous
    claim: "Along lr the gap is below 0.5."
    source: "the test"
    check: {kind: metric, metric: gap, strategy: scratch_descent, over: lr, op: "<",
            threshold: 0.5}
"""

GRID = """
name: scratch
seeds: [0, 1, 2]
experiments:
  - problem: scratch_target
    params: {lr: [0.5, 1.0]}
    strategies:
      - scratch_descent: {lr: [0.1, 0.2]}
"""


def test_a_family_with_a_name_of_both_kinds_runs_reports_and_compares(tmp_path):
    # the family is found as any external one is, workers included: $HARNESS_PLUGINS
    pkgs = tmp_path / "pkgs"
    _package(pkgs, "scratchfam", SCRATCH, CLAIMS)
    grid = tmp_path / "scratch.yaml"
    grid.write_text(GRID)
    a, b = tmp_path / "a", tmp_path / "b"
    for out in (a, b):
        run = _harness("run", str(grid), "--out", str(out), "--backend", "local",
                       "--workers", "2", "--quiet", plugins="scratchfam", path=pkgs)
        assert run.returncode == 0, run.stderr

    cells = pd.read_parquet(a / "cells")
    assert len(cells) == 12 and (cells["status"] == "ok").all()
    params = cells["params"].map(json.loads)
    assert (cells["p_lr"] == params.map(lambda p: p["problem"]["lr"])).all()
    assert (cells["s_lr"] == params.map(lambda p: p["strategy"]["lr"])).all()
    assert set(cells["p_lr"]) == {0.5, 1.0} and set(cells["s_lr"]) == {0.1, 0.2}

    report = _harness("report", str(a), plugins="scratchfam", path=pkgs)
    assert report.returncode == 0, report.stderr
    text = (a / "report.md").read_text()
    section = text.split("## Scratch: two learning rates", 1)[1]
    verdicts = [line for line in section.splitlines() if line.startswith("- **")]
    assert len(verdicts) == 3
    assert verdicts[0].startswith("- **REPRODUCED** — At every step size")
    assert verdicts[1].startswith("- **REPRODUCED** — At problem rate 1")
    assert verdicts[2].startswith("- **REFUSED** — Along lr")
    refusal = section.split("Along lr", 1)[1]
    assert "'lr' is both a problem parameter (p_lr) and a strategy parameter (s_lr)" in refusal
    # the table names the swept problem rate by its column: a bare lr would read as the
    # strategy's, which the variant labels show
    assert "| variant | p_lr | seeds |" in section

    compare = _harness("compare", str(a), str(b), "--out", str(tmp_path / "cmp"),
                       plugins="scratchfam", path=pkgs)
    assert compare.returncode == 0, compare.stderr
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "12 cells in common" in md
    rows = [line for line in md.splitlines() if line.startswith("| scratch_target")]
    assert len(rows) == 4 and all("| step_s: " in line for line in rows), rows
    assert "p_lr=0.5: scratch_descent[lr=0.1]" in md
    # --match-ignore takes names as claims do: the bare lr is refused, naming both columns
    both = _harness("compare", str(a), str(b), "--match-ignore", "lr", plugins="scratchfam",
                    path=pkgs)
    assert both.returncode == 2 and len(both.stderr.strip().splitlines()) == 1, both.stderr
    assert "--match-ignore lr: 'lr' is both a problem parameter (p_lr)" in both.stderr
    one = _harness("compare", str(a), str(b), "--match-ignore", "p_lr", "--out",
                   str(tmp_path / "cmp2"), plugins="scratchfam", path=pkgs)
    assert one.returncode == 2 and "12 cells of BASE differ only in it" in one.stderr, (
        one.stderr)  # ignoring the problem's rate alone would pair two cells with one
