"""The MPI backend under a real ``mpiexec`` (the MPICH wheel installed by `make test`)."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, WAIT_S

MPIEXEC = Path(sys.executable).parent / "mpiexec"
HARNESS = Path(sys.executable).parent / "harness"

GRID = """name: mpi
seeds: [0, 1, 2, 3]
defaults: {timeout_s: 60}
experiments:
  - problem: probe
    params: {size: 50}
    strategies:
      - probe: {steps: 2, sleep_s: 0.2}
  - problem: probe
    seeds: [0]
    strategies:
      - probe: {fail: crash}
      - probe: {fail: raise}
  - problem: probe
    seeds: [0]
    timeout_s: 3
    strategies:
      - probe: {sleep_s: 30}
"""


def mpirun(n, *args, timeout=WAIT_S):
    return subprocess.run([str(MPIEXEC), "-n", str(n), str(HARNESS), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def mpi_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mpi")
    grid = root / "grid.yaml"
    grid.write_text(GRID)
    proc = mpirun(3, "run", str(grid), "--out", str(root / "out"), "--backend", "mpi",
                  "--quiet")
    return root, grid, proc, pd.read_parquet(root / "out" / "cells")


def test_cells_are_shared_out_and_failures_are_rows(mpi_run):
    _, _, proc, df = mpi_run
    assert proc.returncode == 1, proc.stderr  # some cells failed, as designed
    assert len(df) == 7 and df["cell_id"].is_unique
    status = df.set_index("s_fail")["status"]
    assert status["crash"] == "error" and status["raise"] == "error"
    assert (df[df["s_sleep_s"] == 30]["status"] == "timeout").all()
    assert (df[df["s_sleep_s"] == 0.2]["status"] == "ok").all()
    assert set(df["rank"]) == {1, 2} and (df["backend"] == "mpi").all()
    assert set(df["worker"].str.split("@").str[0]) == {"mpi-1", "mpi-2"}


def test_same_metrics_as_the_local_backend(mpi_run, tmp_path):
    _, grid, _, df = mpi_run
    local = subprocess.run([str(HARNESS), "run", str(grid), "--out", str(tmp_path / "l"),
                            "--backend", "local", "--workers", "2", "--quiet"],
                           cwd=ROOT, capture_output=True, text=True, timeout=WAIT_S)
    assert local.returncode == 1, local.stderr
    ldf = pd.read_parquet(tmp_path / "l" / "cells")
    cols = ["cell_id", "status", "probe_value", "probe_steps"]
    a = df[cols].sort_values("cell_id").reset_index(drop=True)
    b = ldf[cols].sort_values("cell_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


def test_resume_and_retry_failed(mpi_run):
    root, grid, _, _ = mpi_run
    again = mpirun(2, "run", str(grid), "--out", str(root / "out"), "--backend", "mpi")
    assert "ran 0 now" in again.stdout, again.stdout + again.stderr
    retry = mpirun(2, "run", str(grid), "--out", str(root / "out"), "--backend", "mpi",
                   "--retry-failed", "--quiet")
    assert "ran 3 now" in retry.stdout, retry.stdout + retry.stderr
    df = pd.read_parquet(root / "out" / "cells")
    assert len(df) == 10 and set(df[df["attempt"] == 2]["rank"]) == {1}


def test_bad_input_ends_every_rank_with_exit_code_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nexperiments:\n  - problem: nope\n")
    proc = mpirun(3, "run", str(bad), "--out", str(tmp_path / "o"), "--backend", "mpi",
                  timeout=WAIT_S)
    assert proc.returncode == 2
    assert "unknown problem 'nope'" in proc.stderr
    flag = mpirun(2, "run", str(bad), "--out", str(tmp_path / "o"), "--backend", "mpi",
                  "--workers", "2", timeout=WAIT_S)
    assert flag.returncode == 2 and "the MPI ranks (mpiexec -n N) are the workers" in flag.stderr


def test_one_rank_runs_the_cells_itself(tmp_path):
    grid = tmp_path / "g.yaml"
    grid.write_text("name: one\nseeds: [0, 1]\nexperiments:\n  - problem: probe\n"
                    "    strategies: [probe]\n")
    proc = mpirun(1, "run", str(grid), "--out", str(tmp_path / "o"), "--backend", "mpi",
                  "--quiet")
    assert proc.returncode == 0, proc.stderr
    df = pd.read_parquet(tmp_path / "o" / "cells")
    assert (df["rank"] == 0).all() and (df["status"] == "ok").all()
