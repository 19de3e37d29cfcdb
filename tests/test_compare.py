"""``harness compare``: two runs of one grid matched cell by cell, through different
backends (quality identical, exit 0) and under load (slower, exit 1), A/A comparisons that
do not cry wolf (simulated under drift through the real comparison, and real runs of one
grid), a real 20% slowdown caught, machines that differ warned about, and bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from harness.solvers.probe import SLOWDOWN

from harness.compare import compare_cells, compare_runs, failed, verdict_lines
from harness.driver import run_grid
from harness.grid import load_grid, parse_grid
from tests.test_verdicts import row

from .conftest import run_cli

# Cells of a fixed amount of work, 80 passes over 2 million numbers (about 0.4 s each on
# this machine; not spin_s, which spins for a fixed time however slow the machine is)
GRID = """
name: cmp
seeds: [0, 1, 2, 3]
experiments:
  - problem: probe
    params: {size: 2000000}
    strategies: [{probe: {steps: 80}}, {probe: {steps: 80, scale: 0.9}}]
"""


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    grid = root / "cmp.yaml"
    grid.write_text(GRID)
    out = root / "base"
    proc = run_cli("run", str(grid), "--out", str(out), "--backend", "local", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    return grid, out


def test_two_backends_give_identical_quality_and_exit_0(base, tmp_path, ray_session):
    grid, out = base
    new = tmp_path / "ray"
    # through the ray backend on the session's Ray (the command line would start its own)
    summary = run_grid(load_grid(grid), new, backend="ray", workers=2, progress=False)
    assert summary.all_ok
    cmp = run_cli("compare", str(out), str(new), "--out", str(tmp_path / "cmp"))
    assert cmp.returncode == 0, cmp.stderr
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "8 cells in common" in md and "every deterministic metric of every variant" in md
    html = (tmp_path / "cmp" / "compare.html").read_text()
    assert "data:image/png;base64," in html
    result = compare_runs(out, new)
    assert [v.label for v in result.variants] == ["probe[steps=80,scale=0.9]", "probe[steps=80]"]
    assert all(not v.differences and "probe_value" in v.equal for v in result.variants)
    assert all(v.train.n == 4 and v.train.has_interval for v in result.variants)


def test_a_run_slowed_by_load_is_a_regression(base, tmp_path):
    grid, out = base
    new = tmp_path / "loaded"
    # Two busy loops pinned to each core: the cells are pinned too (placement), so an
    # unpinned load could leave one core, and the cells on it, undisturbed. Each loop in a
    # session of its own, as each cell is: where the kernel shares a core between sessions
    # first (CONFIG_SCHED_AUTOGROUP), loops of one session would together take no more of it
    # than one cell. So a cell gets at most a third of its core, a clear slow-down whatever
    # else runs beside the suite (which slows the base run as much).
    spin = "import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])})\nwhile True: pass"
    spinners = [subprocess.Popen([sys.executable, "-c", spin, str(core)],
                                 start_new_session=True)
                for core in sorted(os.sched_getaffinity(0)) for _ in range(2)]
    try:
        proc = run_cli("run", str(grid), "--out", str(new), "--backend", "local",
                       "--workers", "2")
    finally:
        for p in spinners:
            p.kill()
            p.wait()
    assert proc.returncode == 0, proc.stderr
    cmp = run_cli("compare", str(out), str(new), "--fail-on-regression", "10")
    assert cmp.returncode == 1, cmp.stdout + cmp.stderr
    slower = [line for line in cmp.stdout.splitlines() if line.startswith("regression: ")]
    assert "regression: the whole run: " in cmp.stdout
    assert slower and all(line.startswith(("regression: probe probe[", "regression: the whole"))
                          for line in slower), cmp.stdout
    assert "\nexit 1: " in cmp.stdout  # the terminal says why, before the paths
    assert cmp.stdout.rstrip().endswith("compare-ratios.png")
    assert "| slower |" in (new / "compare.md").read_text()


def test_bad_input_exits_2_with_one_line(base, tmp_path, write_grid):
    _, out = base
    missing = run_cli("compare", str(out), str(tmp_path / "nowhere"))
    other = tmp_path / "other"
    probe = write_grid("name: p\nexperiments:\n  - problem: probe\n    strategies: [probe]\n")
    assert run_grid(load_grid(probe), other, backend="local", workers=1,
                    progress=False).all_ok
    disjoint = run_cli("compare", str(out), str(other))
    negative = run_cli("compare", str(out), str(out), "--fail-on-regression", "-5")
    for proc in (missing, disjoint, negative):
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "no cell in common" in disjoint.stderr
    assert not (other / "compare.md").exists()


# -- A/A: the same code twice ----------------------------------------------------------
AA_GRID = """
name: aa
seeds: [0, 1, 2]
experiments:
  - problem: probe
    params: {size: [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]}
    strategies: [probe, {probe: {steps: 5}}]
"""


def run_times(rng: np.random.Generator, order: np.ndarray, drift: float = 0.0,
              noise: float = 0.02) -> np.ndarray:
    """Training times of one run along its run order: AR(1) drift of the machine (φ = 0.95,
    sd ``drift``) and independent noise per cell."""
    n = len(order)
    d = np.zeros(n)
    if drift:
        d[0] = rng.normal(0, drift)
        for i in range(1, n):
            d[i] = 0.95 * d[i - 1] + rng.normal(0, drift * np.sqrt(1 - 0.95**2))
    return np.exp(d[order]) * rng.lognormal(0, noise, n)


@pytest.mark.parametrize("case, drift, shift, repeats", [
    ("noise 2%", 0.0, 1.0, 40), ("drift 5%", 0.05, 1.0, 40),
    ("drift 10%", 0.10, 1.0, 150), ("run-level shift 5%", 0.0, 1.05, 40)])
def test_an_a_a_comparison_rarely_cries_wolf(case, drift, shift, repeats):
    # the simulation: 20 variants × 3 seeds, identical code, --fail-on-regression
    # 10; the old per-variant intervals flagged 0 / 16 / 52 / 9% of these comparisons
    cells = parse_grid(AA_GRID, "aa.yaml").cells
    base = pd.DataFrame([row(c.problem, c.strategy, c.seed, c.problem_params,
                             c.strategy_params, train_s=1.0) for c in cells])
    order = np.array([c.run_order for c in cells])
    rng = np.random.default_rng(int(100 * drift + 10 * shift))
    alarms = 0  # 10% drift raises a few (measured 5 of 150 here): it is judged on more
    for _ in range(repeats):
        a = base.assign(train_s=run_times(rng, order, drift))
        b = base.assign(train_s=shift * run_times(rng, order, drift))
        alarms += failed(compare_cells(a, b, Path("base"), Path("new")), 10)
    assert alarms / repeats <= 0.05, (case, alarms)


def test_a_20_percent_slowdown_of_every_cell_is_caught_in_simulation():
    cells = parse_grid(AA_GRID, "aa.yaml").cells
    base = pd.DataFrame([row(c.problem, c.strategy, c.seed, c.problem_params,
                             c.strategy_params, train_s=1.0) for c in cells])
    order = np.array([c.run_order for c in cells])
    rng = np.random.default_rng(7)
    caught = [failed(compare_cells(base.assign(train_s=run_times(rng, order)),
                                   base.assign(train_s=1.2 * run_times(rng, order)),
                                   Path("base"), Path("new")), 10) for _ in range(40)]
    assert sum(caught) >= 36, sum(caught)  # ≥ 90%


SPIN_GRID = """
name: spin
seeds: [0, 1, 2]
experiments:
  - problem: probe
    params: {size: [10, 20, 30]}
    strategies: [{probe: {spin_s: 0.15}}, {probe: {spin_s: 0.15, steps: 5}}]
"""


def test_real_a_a_runs_exit_0_and_a_real_20_percent_slowdown_exits_1(tmp_path, monkeypatch):
    # Three real runs of one grid (18 CPU-bound cells each, 2 workers): each of the 3 A/A
    # comparisons between them must pass --fail-on-regression 10 (bench/aa_compare.py does
    # 45). Then the same cells spinning 20% longer (the probe's slowdown hook; same cell
    # ids) must fail it.
    grid = tmp_path / "spin.yaml"
    grid.write_text(SPIN_GRID)
    runs = []
    for i in range(3):
        out = tmp_path / f"run{i}"
        assert run_grid(load_grid(grid), out, backend="local", workers=2,
                        progress=False).all_ok
        runs.append(out)
    alarms = [(a.name, b.name) for i, a in enumerate(runs) for b in runs[i + 1:]
              if failed(compare_runs(a, b), 10)]
    assert not alarms, alarms
    monkeypatch.setenv(SLOWDOWN, "1.2")
    slow = tmp_path / "slow"
    assert run_grid(load_grid(grid), slow, backend="local", workers=2, progress=False).all_ok
    cmp = run_cli("compare", str(runs[0]), str(slow), "--fail-on-regression", "10")
    assert cmp.returncode == 1, cmp.stdout + cmp.stderr
    assert "regression: " in cmp.stdout
    same = run_cli("compare", str(runs[0]), str(runs[1]), "--fail-on-regression", "10")
    assert same.returncode == 0, same.stdout
    assert "\nexit 0: nothing slower than 1 + 10%" in same.stdout


def test_different_machines_are_warned_about_and_untestable_variants_listed():
    cells = parse_grid(AA_GRID.replace("seeds: [0, 1, 2]", "seeds: [0]"), "aa.yaml").cells
    a = pd.DataFrame([row(c.problem, c.strategy, c.seed, c.problem_params, c.strategy_params,
                          train_s=1.0) for c in cells]).assign(host="laptop")
    b = a.assign(host="gpu-node-3", train_s=5.0)
    result = compare_cells(a, b, Path("base"), Path("new"), (["CPU A"], ["CPU B"]))
    lines = verdict_lines(result, 10)
    assert any(line.startswith("warning: BASE and NEW ran on different machines (host: "
                               "laptop vs gpu-node-3)") for line in lines), lines
    assert any("CPU model: CPU A vs CPU B" in line for line in lines)
    # one seed: no variant can be tested (and none is flagged), and the output says so
    assert any(line.startswith("untestable: 20 variant(s)") for line in lines), lines
    assert result.variants[0].label.startswith("size=")  # instances are not pooled
    assert not result.regressions(10)


# -- "what did my change do": --match-ignore -------------------------------------------
CHANGE_GRID = """
name: change
seeds: [0, 1]
experiments:
  - problem: peaks
    params: {n_train: 40, n_val: 20, width: 4, depth: 2}
    strategies:
      - adam: {epochs: 2, batch_size: 10, lr: [0.001, 0.01]}
      - slimtrain: {epochs: 2, batch_size: 10, r: 5}
"""


def test_match_ignore_pairs_the_cells_of_a_changed_parameter(tmp_path):
    # two real runs of one grid in which slimtrain's r went from 5 to 10
    runs = []
    for name, text in (("r5", CHANGE_GRID), ("r10", CHANGE_GRID.replace("r: 5", "r: 10"))):
        grid = tmp_path / f"{name}.yaml"
        grid.write_text(text)
        assert run_grid(load_grid(grid), tmp_path / name, backend="local", workers=2,
                        progress=False).all_ok
        runs.append(str(tmp_path / name))
    # by identity only the four Adam cells match; the slimtrain cells are named in full
    plain = run_cli("compare", *runs, "--out", str(tmp_path / "plain"))
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.startswith("4 cells in common"), plain.stdout
    assert "only in BASE: peaks slimtrain[batch_size=10,epochs=2] (2)" in plain.stdout
    assert "only in NEW: peaks slimtrain[batch_size=10,epochs=2,r=10] (2)" in plain.stdout
    # ignoring r pairs all six, and says what changed
    paired = run_cli("compare", *runs, "--match-ignore", "r", "--out", str(tmp_path / "r"))
    assert paired.returncode == 0, paired.stderr
    lines = paired.stdout.splitlines()
    assert lines[0].startswith("6 cells in common (matched by problem, strategy, parameters "
                               "and seed, ignoring r), 0 in BASE only, 0 in NEW only"), lines
    assert ("paired: peaks slimtrain[batch_size=10,epochs=2] → "
            "slimtrain[batch_size=10,epochs=2,r=10]: r: 5 → 10") in lines
    assert lines[-4].startswith("exit 0: ") and lines[-1].endswith("compare-ratios.png")
    result = compare_runs(Path(runs[0]), Path(runs[1]), ["r"])
    assert result.common == 6 and result.only_base.empty and result.only_new.empty
    assert {v.label: (v.cells, v.ignored) for v in result.variants} == {
        "adam[batch_size=10,epochs=2]": (2, []),
        "adam[lr=0.01,batch_size=10,epochs=2]": (2, []),
        "slimtrain[batch_size=10,epochs=2] → slimtrain[batch_size=10,epochs=2,r=10]":
            (2, ["r: 5 → 10"])}
    assert "| r: 5 → 10 |" in (tmp_path / "r" / "compare.md").read_text()
    # refused, one line each: a name no plug-in has, and an ignore that pairs two Adam
    # cells of one run (lr 0.001 and 0.01) with one of the other
    unknown = run_cli("compare", *runs, "--match-ignore", "r,rr")
    ambiguous = run_cli("compare", *runs, "--match-ignore", "lr")
    for proc in (unknown, ambiguous):
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert "--match-ignore rr: no problem or strategy" in unknown.stderr
    assert ", r, " in unknown.stderr  # the names allowed
    assert ("--match-ignore lr: 4 cells of BASE differ only in it (e.g. peaks adam seed 0: "
            "lr=0.001 and lr=0.01), so the pairing would be ambiguous") in ambiguous.stderr
