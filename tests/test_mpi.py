"""The MPI backend under a real ``mpiexec`` (the MPICH wheel installed by `make test`)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.stopping import PAUSE_ENV
from tests.conftest import ROOT, WAIT_S, processes, wait_until

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


def test_worker_ranks_wait_through_a_slow_start_of_rank_0(tmp_path, write_grid):
    """Rank 0's start-up (importing torch, reading the grid) can outlast the silence after
    which a worker rank gives up on it, on a busy node: rank 0 is heard throughout."""
    grid = write_grid("name: slow-start\nseeds: [0, 1, 2, 3]\nexperiments:\n"
                      "  - problem: probe\n    params: {size: 10}\n    strategies: [probe]\n")
    marker, out, silence_s = tmp_path / "paused", tmp_path / "out", 2
    env = {**os.environ, "HARNESS_MPI_HEARTBEAT_S": "0.2", "HARNESS_MPI_LOST_S": str(silence_s),
           PAUSE_ENV: f"startup={marker}"}
    log = tmp_path / "stderr"  # a file, to be read while the job runs
    ours = f"{PAUSE_ENV}=startup={marker}".encode()

    def waiting_workers() -> int:
        """Worker ranks in their loop: each starts a cell worker (which inherits this test's
        pause setting) just before it counts rank 0's silence, and kills it on giving up."""
        assert "no word from rank 0" not in log.read_text(), log.read_text()
        return len(processes(
            lambda e: ours in e and any(v.startswith(b"HARNESS_WORKER=mpi-") for v in e)))

    with open(log, "w") as err_file:
        proc = subprocess.Popen([str(MPIEXEC), "-n", "3", str(HARNESS), "run", str(grid),
                                 "--out", str(out), "--backend", "mpi", "--quiet"], cwd=ROOT,
                                env=env, stdout=subprocess.PIPE, stderr=err_file, text=True,
                                start_new_session=True)  # a group to kill if the test fails
    try:
        wait_until("rank 0 held in its start-up, both worker ranks waiting for cells",
                   lambda: marker.exists() and waiting_workers() == 2, proc)
        held_since = time.monotonic()
        # What is tested is a duration: rank 0 held for three times the silence a worker rank
        # allows, with both worker ranks still waiting all along.
        wait_until(f"rank 0 held for {3 * silence_s} s",
                   lambda: waiting_workers() == 2 and time.monotonic() - held_since > 3 * silence_s,
                   proc)
        marker.unlink()
        stdout, _ = proc.communicate(timeout=WAIT_S)
        err = log.read_text()
        assert proc.returncode == 0, stdout + err
        assert "no word from rank 0" not in err
    finally:
        if proc.poll() is None:  # held or hung: end the whole job
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    df = pd.read_parquet(out / "cells")
    assert len(df) == 4 and (df["status"] == "ok").all() and set(df["rank"]) == {1, 2}


def test_no_message_is_left_unreceived_at_the_end(tmp_path, write_grid):
    """MPICH's MPI_Finalize fails on a message never received, and the process manager then
    kills the whole job (exit 9) after every result was written. With rank 0's heartbeats
    free to follow its STOP and a heartbeat every millisecond, 9 runs in 10 ended that way;
    now none goes after the STOP, and rank 0 takes each worker rank's messages up to its
    goodbye."""
    grid = write_grid("name: last-words\nseeds: [0, 1, 2, 3]\nexperiments:\n"
                      "  - problem: probe\n    params: {size: 10}\n    strategies: [probe]\n")
    env = {**os.environ, "HARNESS_MPI_HEARTBEAT_S": "0.001", "HARNESS_MPI_LOST_S": "30"}
    for attempt in range(2):
        out = tmp_path / f"out{attempt}"
        proc = subprocess.run([str(MPIEXEC), "-n", "3", str(HARNESS), "run", str(grid), "--out",
                               str(out), "--backend", "mpi", "--quiet"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=WAIT_S)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert (pd.read_parquet(out / "cells")["status"] == "ok").all()
