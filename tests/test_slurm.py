"""`harness submit`, `status` and `cancel` against a real Slurm (slurm/local-cluster.sh up:
two slurmd "nodes" n1 and n2 on this machine). Skipped, with the reason, when no Slurm
answers, unless HARNESS_REQUIRE_SLURM=1 (as in .ci/run), where that is a failure."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.schema import deterministic_metric_columns
from harness.slurm import scheduler
from harness.store import Store
from tests.conftest import ROOT

pytestmark = pytest.mark.slurm
HARNESS = [sys.executable, "-m", "harness.cli"]

MIXED = """name: mixed
seeds: [0, 1]
defaults: {timeout_s: 300}
experiments:
  - problem: probe
    seeds: [0, 1, 2, 3]
    strategies:
      - probe: {sleep_s: 0.5, steps: 3}
  - problem: rfm
    params: {dataset: digits, n_train: 128, n_features: [32, 256]}
    strategies: [min_norm, hybrid]
"""
SLEEPY = """name: sleepy
seeds: [0, 1, 2, 3, 4, 5, 6, 7]
experiments:
  - problem: probe
    strategies:
      - probe: {sleep_s: 1.5}
"""


@pytest.fixture(scope="session", autouse=True)
def slurm():
    if scheduler.available():
        return
    if os.environ.get("HARNESS_REQUIRE_SLURM") == "1":
        pytest.fail("HARNESS_REQUIRE_SLURM=1 but no Slurm answers (sinfo failed); "
                    "start one with: sudo slurm/local-cluster.sh up")
    pytest.skip("no Slurm answers here (sinfo failed); start one with "
                "'sudo slurm/local-cluster.sh up', or set HARNESS_REQUIRE_SLURM=1 to make "
                "this a failure")


def harness(*args: str, env: dict | None = None, timeout: float = 120):
    return subprocess.run([*HARNESS, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def submit(*args: str, env: dict | None = None) -> str:
    proc = harness("submit", *args, env=env)
    assert proc.returncode == 0, proc.stderr
    return re.search(r"submitted job (\d+)", proc.stdout)[1]


def queued(job: str) -> list[str]:
    out = subprocess.run(["squeue", "--noheader", "--array", f"--jobs={job}", "--format=%T"],
                         capture_output=True, text=True).stdout
    return out.split()


def wait_done(job: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while queued(job):
        assert time.time() < deadline, f"job {job} still queued after {timeout} s"
        time.sleep(0.5)


def logs(out: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((out / "slurm" / "logs").glob("*")))


def test_array_submit_returns_at_once_and_matches_a_local_run(write_grid, tmp_path):
    grid, out = write_grid(MIXED), tmp_path / "array out"  # a space in the path
    job = submit(str(grid), "--out", str(out), "--mode", "array", "--shards", "3",
                 "--max-parallel", "2")
    assert queued(job), "submit waited for the job"  # it returns while the job is queued
    status = harness("status", str(out), env={"HARNESS_SQUEUE_INTERVAL": "0"}).stdout
    assert f"job {job} (array, 3 task(s))" in status
    wait_done(job)
    status = harness("status", str(out)).stdout
    assert "12 of 12 cells recorded (12 ok)" in status, status + logs(out)
    slurm_rows = Store(out).cells()
    assert set(slurm_rows["slurm_job_id"]) == {f"{job}_{k}" for k in range(3)}
    assert len(list((out / "cells").glob("part-*.parquet"))) == 3  # one per array task
    again = harness("submit", str(grid), "--out", str(out))
    assert again.returncode == 0 and "nothing to submit" in again.stdout
    assert len(json.loads((out / "slurm" / "jobs.json").read_text())) == 1

    local = harness("run", str(grid), "--out", str(tmp_path / "local"), "--backend", "local",
                    "--workers", "2", "--quiet", timeout=300)
    assert local.returncode == 0, local.stderr
    local_rows = Store(tmp_path / "local").cells()
    cols = [c for c in deterministic_metric_columns() if slurm_rows[c].notna().any()]
    a = slurm_rows.set_index("cell_id").sort_index()
    b = local_rows.set_index("cell_id").sort_index()
    assert list(a.index) == list(b.index) and len(cols) >= 4
    for col in cols:  # bitwise: numbers as floats (NaN equals NaN), strings as they are
        if pd.api.types.is_numeric_dtype(a[col]):
            np.testing.assert_array_equal(a[col].to_numpy(float), b[col].to_numpy(float),
                                          err_msg=col)
        else:
            assert a[col].fillna("<null>").tolist() == b[col].fillna("<null>").tolist(), col


def test_mpi_mode_spreads_ranks_over_both_nodes(write_grid, tmp_path):
    grid, out = write_grid(SLEEPY), tmp_path / "mpi"
    job = submit(str(grid), "--out", str(out), "--mode", "mpi", "--nodes", "2",
                 "--tasks-per-node", "2")
    wait_done(job)
    df = Store(out).cells()
    assert len(df) == 8 and (df["status"] == "ok").all(), logs(out)
    assert set(df["node"]) == {"n1", "n2"} and set(df["rank"]) == {1, 2, 3}
    assert (df["backend"] == "mpi").all() and set(df["slurm_job_id"]) == {job}


def rank_process(job: str, rank: int, timeout: float = 60) -> int:
    """PID of the harness process of MPI rank ``rank`` in Slurm job ``job``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                env = (proc / "environ").read_bytes().split(b"\0")
                args = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if (f"SLURM_JOB_ID={job}".encode() in env and f"PMI_RANK={rank}".encode() in env
                    and b"run" in args and b"harness.worker" not in args):
                return int(proc.name)
        time.sleep(0.2)
    raise AssertionError(f"no process of rank {rank} in job {job}")


def busy_ranks(out: Path) -> bool:
    return any("[" in p.read_text() and p.read_text().strip() != "[]"
               for p in (out / "runs").glob("*.inflight.json"))


def test_mpi_mode_survives_lost_ranks_and_every_cell_ends_with_a_row(write_grid, tmp_path):
    """A lost rank costs only its cell while others live; once every worker rank is lost,
    each cell not yet handed out still gets a row that names why."""
    from harness.driver import plan_run
    from harness.grid import load_grid

    sleepy = SLEEPY.replace("1.5", "4.0").replace("6, 7]", "6, 7, 8, 9, 10, 11]")
    grid, out = write_grid(sleepy), tmp_path / "lost"
    job = submit(str(grid), "--out", str(out), "--mode", "mpi", "--nodes", "2",
                 "--tasks-per-node", "2",
                 env={"HARNESS_MPI_HEARTBEAT_S": "0.5", "HARNESS_MPI_LOST_S": "6"})
    victims = {rank: rank_process(job, rank) for rank in (1, 2, 3)}
    deadline = time.time() + 120
    while not busy_ranks(out):
        assert time.time() < deadline, "no cell started"
        time.sleep(0.1)
    time.sleep(1.0)  # rank 2 is inside its first cell
    os.kill(victims[2], 9)
    while not any(s == "error" for s, _ in Store(out).latest_status().values()):
        assert time.time() < deadline, "rank 2's loss was never recorded"
        time.sleep(0.2)
    time.sleep(1.0)  # ranks 1 and 3 are inside a cell
    os.kill(victims[1], 9)
    os.kill(victims[3], 9)
    wait_done(job, timeout=300)
    df = Store(out).cells()
    assert len(df) == 12, logs(out)  # every cell has a row
    lost = df[df["status"] == "error"]
    assert len(lost) == 3 and lost["error"].str.startswith("RankLost: MPI rank").all(), \
        df[["status", "error", "rank"]]
    ok, unrun = df[df["status"] == "ok"], df[df["status"] == "skipped"]
    assert len(ok) >= 2 and set(ok["rank"]) <= {1, 3}  # the others went on
    assert len(unrun) >= 1 and unrun["error"].str.startswith(
        "NoWorkers: every MPI worker rank (1, 2, 3) was lost").all(), unrun["error"]
    # skipped cells run again by default, lost ranks' cells with --retry-failed
    cells = load_grid(grid).cells
    assert len(plan_run(cells, Store(out)).to_run) == len(unrun)
    assert len(plan_run(cells, Store(out), retry_failed=True).to_run) == len(unrun) + 3


def test_ray_mode_runs_cells_on_both_nodes(write_grid, tmp_path):
    grid, out = write_grid(SLEEPY), tmp_path / "ray"
    # Two Ray nodes on one host need a loopback address other than 127.0.0.1.
    job = submit(str(grid), "--out", str(out), "--mode", "ray", "--nodes", "2",
                 env={"HARNESS_RAY_NODE_IP": "127.0.0.2"})
    wait_done(job, timeout=400)
    df = Store(out).cells()
    assert len(df) == 8 and (df["status"] == "ok").all(), logs(out)
    assert set(df["node"]) == {"n1", "n2"}  # Ray placed cells on both Slurm nodes
    assert (df["backend"] == "ray").all() and df["worker"].str.startswith("ray-").all()


def release(job: str, timeout: float = 60) -> None:
    """A requeued job waits ~2 minutes (BeginTime) before it may start again; the test
    lifts that delay as an operator would."""
    deadline = time.time() + timeout
    while "PENDING" not in queued(job):
        assert time.time() < deadline, f"job {job} was not requeued"
        time.sleep(0.2)
    # Not at once: a restart on the same node before slurmd has revoked the previous
    # run's credential is killed ("Job credential revoked").
    time.sleep(3)
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)


def wait_for_rows(out: Path, n: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while len(Store(out).latest_status()) < n:
        assert time.time() < deadline, f"fewer than {n} cells recorded after {timeout} s"
        time.sleep(0.2)


def test_preempted_grid_completes_after_requeue_with_no_lost_or_duplicated_cell(
        write_grid, tmp_path):
    grid, out = write_grid(SLEEPY), tmp_path / "preempt"
    job = submit(str(grid), "--out", str(out), "--mode", "array", "--shards", "1",
                 "--cpus-per-task", "2")
    task = f"{job}_0"
    wait_for_rows(out, 2)
    # Preemption: Slurm kills the running job (SIGTERM to all its processes), requeues it.
    subprocess.run(["scontrol", "requeue", task], check=True)
    release(task)
    wait_for_rows(out, 5)
    # The time-limit warning: USR1 to the job script, which stops the run and requeues.
    subprocess.run(["scancel", "--signal=USR1", "--batch", task], check=True)
    release(task)
    wait_done(job)
    rows = Store(out).cells(all_attempts=True)
    ok = rows[rows["status"] == "ok"]
    assert len(ok) == 8 and ok["cell_id"].is_unique, logs(out)  # none lost, none twice
    assert set(rows["status"]) == {"ok", "preempted"}
    assert rows[rows["status"] == "preempted"]["cell_id"].isin(ok["cell_id"]).all()
    log = logs(out)
    assert "TERM at" in log and "USR1 at" in log
    status = harness("status", str(out)).stdout
    assert "8 of 8 cells recorded (8 ok)" in status


def test_status_shows_pending_cells_and_cancel_removes_the_jobs(write_grid, tmp_path):
    grid, out = write_grid(SLEEPY), tmp_path / "held"
    job = submit(str(grid), "--out", str(out), "--shards", "4", "--sbatch=--hold")
    status = harness("status", str(out), env={"HARNESS_SQUEUE_INTERVAL": "0"})
    assert "0 of 8 cells recorded (8 pending)" in status.stdout, status.stdout
    assert f"job {job} (array, 4 task(s)): 4 PENDING" in status.stdout
    lines = harness("status", str(out), "--cells").stdout.splitlines()[2:]
    assert len(lines) == 8 and all(line.split()[1:3] == ["pending", f"{job}_{i % 4}"]
                                   for i, line in enumerate(lines)), lines
    again = harness("submit", str(grid), "--out", str(out), "--dry-run")
    assert again.returncode == 0 and (out / "slurm" / "array-2.sbatch").exists()
    cancel = harness("cancel", str(out))
    assert cancel.returncode == 0 and f"cancelled job(s) {job}" in cancel.stdout
    wait_done(job, timeout=30)
    status = harness("status", str(out), env={"HARNESS_SQUEUE_INTERVAL": "0"}).stdout
    assert "(8 not run)" in status


def test_squeue_answers_are_cached_between_status_calls(tmp_path):
    cache = tmp_path / "q.json"
    first = scheduler.queue_states(["999999"], cache=cache)
    stamp = cache.stat().st_mtime_ns
    assert scheduler.queue_states(["999999"], cache=cache) == first
    assert cache.stat().st_mtime_ns == stamp  # answered from the cache, squeue not called
