"""``harness compare``: two runs of one grid matched cell by cell, through different
backends (quality identical, exit 0) and under load (slower, exit 1), and bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from harness.compare import compare_runs
from harness.driver import run_grid
from harness.grid import load_grid

from .conftest import run_cli

# CPU-bound cells of a fixed amount of work (about 0.4 s each on this machine)
GRID = """
name: cmp
seeds: [0, 1, 2, 3]
experiments:
  - problem: rfm
    params: {n_train: 600, n_test: 300, n_features: 2400}
    strategies: [min_norm, {tikhonov: {select: oracle}}]
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
    assert [v.label for v in result.variants] == ["min_norm", "tikhonov"]
    assert all(not v.differences and "test_mse" in v.equal for v in result.variants)
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
    slower = [line for line in cmp.stdout.splitlines() if line.startswith("slower: ")]
    assert slower and all("rfm / digits" in line for line in slower), cmp.stdout
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
