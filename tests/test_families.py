"""A family is a plug-in: a package outside the engine, with a problem, a strategy and a
claim and no report code, gets a report section with a table, a figure and a verdict."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from harness import registry
from harness.driver import run_grid
from harness.errors import RegistrationError
from harness.grid import load_grid
from harness.plugin import Problem
from harness.provenance import git_state

from .conftest import HARNESS, ROOT

TOY = '''
"""A toy family: least squares by gradient descent on a noisy line."""
from typing import ClassVar

import numpy as np

from harness.family import declare_family
from harness.params import Param
from harness.plugin import Fit, Metric, Problem, Strategy

declare_family("toy", "Toy lines: gradient descent", claims=__name__)


class Line(Problem):
    """y = 2x + 1 + noise at n points in [0, 1]."""
    name = "toy_line"
    family = "toy"
    parameters: ClassVar = {"n": Param(int, 20, "points", low=2)}
    metrics: ClassVar = {"test_mse": Metric(float, "mean squared error on fresh points")}

    def build(self, seed, run):
        rng = np.random.default_rng(seed)
        x = rng.uniform(0, 1, self.params["n"])
        return x, 2 * x + 1 + 0.01 * rng.standard_normal(x.size)

    def evaluate(self, task, solution, run):
        x = np.linspace(0, 1, 50)
        return {"test_mse": float(np.mean((solution[0] * x + solution[1] - 2 * x - 1) ** 2))}


class GradientDescent(Strategy):
    """Gradient descent on the mean squared error from zero, step 0.5."""
    name = "toy_gd"
    family = "toy"
    parameters: ClassVar = {"iters": Param(int, 5, "iterations", low=1)}
    metrics: ClassVar = {"final_loss": Metric(float, "training loss at the end")}

    def fit(self, task, run):
        x, y = task
        w = np.zeros(2)
        for step in range(self.params["iters"]):
            r = w[0] * x + w[1] - y
            w -= 0.5 * np.array([np.mean(r * x), np.mean(r)])
            run.log("loss", float(np.mean(r**2)), step=step)
        return Fit((w[0], w[1]), {"final_loss": float(np.mean((w[0] * x + w[1] - y) ** 2))})
'''

CLAIMS = """
paper: "A toy paper (2026)"
family: toy
claims:
  - id: long_runs_fit
    claim: "Eighty iterations fit the line to a test error below 0.05."
    source: "made up for the test"
    check: {kind: metric, metric: test_mse, strategy: "toy_gd[iters=80]", op: "<", threshold: 0.05}
  - id: longer_is_better
    claim: "Eighty iterations beat five."
    source: "made up for the test"
    check: {kind: ratio, metric: test_mse, strategy: "toy_gd[iters=80]",
            baseline: "toy_gd[iters=5]", op: "<", threshold: 1.0}
"""

GRID = """
name: toy
seeds: [0, 1, 2, 3]
experiments:
  - problem: toy_line
    params: {n: [16, 64]}
    strategies:
      - toy_gd: {iters: [5, 80]}
"""

DUPLICATE = '''
from harness.params import Param
from harness.plugin import Problem

class AnotherLine(Problem):
    name = "toy_line"
    family = "toy"
    def build(self, seed, run): ...
    def evaluate(self, task, solution, run): ...
'''


def _package(root: Path, name: str, text: str, claims: str | None = None) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "__init__.py").write_text(textwrap.dedent(text))
    if claims:
        (root / name / "claims").mkdir()
        (root / name / "claims" / "toy.yaml").write_text(claims)


def _harness(*args: str, plugins: str, path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HARNESS_PLUGINS": plugins,
           "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([*HARNESS, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_a_family_outside_the_engine_gets_a_section_a_figure_and_verdicts(tmp_path):
    pkgs = tmp_path / "pkgs"
    _package(pkgs, "toyfam", TOY, CLAIMS)
    grid, out = tmp_path / "toy.yaml", tmp_path / "out"
    grid.write_text(GRID)

    run = _harness("run", str(grid), "--out", str(out), "--backend", "local", "--workers", "2",
                   plugins="toyfam", path=pkgs)
    assert run.returncode == 0, run.stderr
    cells = pd.read_parquet(out / "cells")
    assert len(cells) == 16 and (cells["status"] == "ok").all()
    # the plug-in file is in no commit: the results must not claim a clean checkout
    assert cells["git_dirty"].all()

    report = _harness("report", str(out), plugins="toyfam", path=pkgs)
    assert report.returncode == 0, report.stderr
    text = (out / "report.md").read_text()
    section = text.split("## Toy lines: gradient descent", 1)[1].split("## Provenance")[0]
    table = [line for line in section.splitlines() if line.startswith("| toy_gd")]
    # one row per variant and swept n, ints printed as ints; iters=5 is the default, so
    # its label does not name it
    assert [row.split("|")[1:3] for row in table] == [
        [" toy_gd ", " 16 "], [" toy_gd ", " 64 "],
        [" toy_gd[iters=80] ", " 16 "], [" toy_gd[iters=80] ", " 64 "]]
    assert "test_mse" in section and "final_loss" in section
    assert (out / "figures" / "toy-toy_line-metrics.png").stat().st_size > 1000
    assert "figures/toy-toy_line-metrics.png" in section
    verdicts = [line for line in section.splitlines() if line.startswith("- **")]
    assert len(verdicts) == 2 and all(v.startswith("- **REPRODUCED**") for v in verdicts)

    # a user's own claims folder is judged too
    mine = tmp_path / "mine"
    mine.mkdir()
    # five iterations are far from the line: one value per seed, all far above 1e-12
    (mine / "strict.yaml").write_text(CLAIMS.replace(
        "Eighty iterations fit the line to a test error below 0.05",
        "Five iterations fit the line to a test error below 1e-12").replace(
        '"toy_gd[iters=80]", op: "<", threshold: 0.05', '"toy_gd[iters=5]", op: "<", '
        'threshold: 1.0e-12').replace("long_runs_fit", "strict"))
    again = _harness("report", str(out), "--claims", str(mine), plugins="toyfam", path=pkgs)
    assert again.returncode == 0, again.stderr
    assert "**NOT REPRODUCED** — Five iterations fit the line to a test error below 1e-12" \
        in (out / "report.md").read_text()

    # a second plug-in taking a registered name is refused, naming both modules
    _package(pkgs, "toydup", DUPLICATE)
    clash = _harness("list", plugins="toyfam,toydup", path=pkgs)
    assert clash.returncode == 2
    assert len(clash.stderr.strip().splitlines()) == 1 and "Traceback" not in clash.stderr
    assert "toyfam.Line" in clash.stderr and "toydup.AnotherLine" in clash.stderr


def test_a_registered_name_cannot_be_taken_twice():
    taken = next(iter(registry.problems()))
    with pytest.raises(RegistrationError) as err:
        class Impostor(Problem):
            name = taken
            family = "impostor"

            def build(self, seed, run): ...

            def evaluate(self, task, solution, run): ...
    message = str(err.value)
    assert registry.problems()[taken].__module__ in message and __name__ in message
    assert registry.problems()[taken].__name__ != "Impostor"


def test_git_dirty_counts_untracked_plugin_files(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (repo / "tracked.py").write_text("x = 1\n")
    subprocess.run([*git, "add", "tracked.py"], check=True)
    subprocess.run([*git, "commit", "-qm", "one"], check=True)
    (repo / "new_plugin.py").write_text("y = 2\n")
    tracked, untracked = (repo / "tracked.py").resolve(), (repo / "new_plugin.py").resolve()
    assert git_state(repo, (tracked,))[1] is False
    assert git_state(repo, (tracked, untracked))[1] is True
    outside = tmp_path / "elsewhere.py"
    outside.write_text("z = 3\n")
    assert git_state(repo, (tracked, outside.resolve()))[1] is True
    (repo / "tracked.py").write_text("x = 2\n")
    assert git_state.__wrapped__(repo, (tracked,))[1] is True


def _imports(path: Path) -> set[str]:
    """The modules ``path`` imports (absolute names; relative ones resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = (f"{base}.{node.module}" if node.module else base) if node.level \
                else node.module
            found |= {module, *(f"{module}.{a.name}" for a in node.names)}
    return found


def _unit(module: str) -> str:
    """The part of the engine a module belongs to: ``harness.report`` for
    ``harness.report.claims``, ``harness.driver`` for itself."""
    return ".".join(module.split(".")[:2])


def test_the_engine_knows_no_scheduler_in_its_core_no_family_and_no_cycle():
    for name in ("cell", "grid", "runner", "worker", "driver", "store"):
        imported = _imports(ROOT / "harness" / f"{name}.py")
        assert not any(m.startswith("harness.slurm") for m in imported), name
    edges: dict[str, set[str]] = {}
    for path in (ROOT / "harness").rglob("*.py"):
        imported = {m for m in _imports(path) if m.startswith("harness.")}
        # plug-ins are found by registration, never imported by name
        assert not any(m.startswith(("harness.solvers", "harness.problems")) for m in imported)
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        units = {_unit(m) for m in imported if (ROOT / Path(*_unit(m).split("."))).is_dir()
                 or (ROOT / Path(*_unit(m).split("."))).with_suffix(".py").exists()}
        edges.setdefault(_unit(module), set()).update(units - {_unit(module)})

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    cycles = sorted(u for u in edges if u in reachable(u))
    assert not cycles, f"import cycles through {cycles}"


RFM = """
name: installed
seeds: [0, 1]
experiments:
  - problem: rfm
    params: {n_train: 64, n_test: 100, n_features: [32, 64, 128]}
    strategies: [min_norm, {tikhonov: {select: oracle}}]
"""


def test_an_installed_package_finds_its_published_claims(tmp_path):
    """A non-editable install (no top-level problems/solvers) writes the verdicts the
    checkout writes."""
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
                          "--no-build-isolation", "--target", str(target), str(ROOT)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr
    assert (target / "harness" / "solvers").is_dir()
    assert not (target / "problems").exists() and not (target / "solvers").exists()
    assert list((target / "harness" / "solvers").glob("*/claims/*.yaml"))

    grid, out = tmp_path / "g.yaml", tmp_path / "out"
    grid.write_text(RFM)
    assert run_grid(load_grid(grid), out, backend="local", workers=2, progress=False).all_ok

    def verdicts(cwd: Path, env: dict[str, str]) -> list[str]:
        proc = subprocess.run([*HARNESS, "report", str(out)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr
        return [line for line in (out / "report.md").read_text().splitlines()
                if line.startswith(("- **", "Claims of"))]

    checkout = verdicts(ROOT, dict(os.environ))
    installed_env = {**os.environ, "PYTHONPATH": str(target)}
    where = subprocess.run([sys.executable, "-c", "import harness; print(harness.__file__)"],
                           cwd=tmp_path, env=installed_env, capture_output=True, text=True)
    assert where.stdout.strip().startswith(str(target)), where.stdout + where.stderr
    installed = verdicts(tmp_path, installed_env)
    assert installed == checkout
    assert any(line.startswith("Claims of") for line in installed)
    assert any(line.startswith("- **") and "Estimate:" in line for line in installed)


def test_the_numerics_import_nothing_of_the_engine():
    """Integrators, solvers and training loops are a library: only the strategies and what
    a family's problems share (the adapters), the report sections and the family
    declarations know the engine."""
    adapters = {"strategies.py", "problem.py", "report.py", "__init__.py", "probe.py"}
    numerics = [p for p in (ROOT / "solvers").rglob("*.py") if p.name not in adapters]
    assert len(numerics) >= 10
    for path in numerics:
        engine = {m for m in _imports(path) if m.startswith("harness.")
                  and not m.startswith("harness.solvers")}
        assert not engine, (path, engine)


def test_a_column_declared_with_another_type_is_refused_at_registration():
    from harness.plugin import Metric, Strategy
    from harness.vocabulary import METRIC, declared

    owner = next(c for c in registry.problems().values() if c.metrics)
    column, term = next((c, t) for c, t in declared(owner).items() if t.kind == METRIC)
    other_kind = str if term.type is not str else int
    with pytest.raises(RegistrationError) as err:
        class Clash(Strategy):
            name = "clash_strategy"
            family = owner.family
            metrics = {column: Metric(other_kind, "the same column, another type")}  # noqa: RUF012

            def fit(self, task, run): ...
    message = str(err.value)
    # it names the column, this module, and a plug-in declaring it the other way (whichever
    # registered first: that depends on which tests imported what before)
    declaring = [c.__module__ for c in [*registry.problems().values(),
                                        *registry.strategies().values()] if column in declared(c)]
    assert column in message and __name__ in message
    assert any(f"({module})" in message for module in declaring), (message, declaring)
    assert "clash_strategy" not in registry.strategies()


def test_the_engine_names_no_registered_problem_or_strategy():
    """Adding, renaming or removing a plug-in never needs an engine edit: no problem or
    strategy name appears as a word in harness/ (``probe`` is also an ordinary word)."""
    import re

    names = (set(registry.problems()) | set(registry.strategies())) - {"probe"}
    for path in (ROOT / "harness").rglob("*.py"):
        text = path.read_text()
        found = [n for n in names if re.search(rf"\b{re.escape(n)}\b", text)]
        assert not found, (path, found)
