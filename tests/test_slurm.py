"""`harness submit`, `status` and `cancel` against a real Slurm (slurm/local-cluster.sh up:
two slurmd "nodes" n1 and n2 on this machine). Skipped, with the reason, when no Slurm
answers, unless HARNESS_REQUIRE_SLURM=1 (as in .ci/run), where that is a failure."""

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness import audit, location
from harness.schema import deterministic_metric_columns
from harness.slurm import scheduler
from harness.store import Store
from tests.conftest import ROOT, WAIT_S, held_grid, in_flight, processes, wait_until

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
  - problem: probe
    params: {size: [32, 256]}
    strategies: [{probe: {steps: 1}}, {probe: {steps: 5, scale: 2.0}}]
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


def harness(*args: str, env: dict | None = None, timeout: float = WAIT_S):
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


def wait_done(job: str) -> None:
    wait_until(f"job {job} done", lambda: not queued(job))


def logs(out: Path) -> str:
    return "\n".join(p.read_text() for p in sorted((out / "slurm" / "logs").glob("*")))


def test_array_submit_returns_at_once_and_matches_a_local_run(write_grid, tmp_path):
    grid, out = write_grid(MIXED), tmp_path / "array out"  # a space in the path
    job = submit(str(grid), "--out", str(out), "--mode", "array", "--shards", "3",
                 "--max-parallel", "2")
    assert queued(job), "submit waited for the job"  # it returns while the job is queued
    status = harness("status", str(out), env={"HARNESS_SQUEUE_INTERVAL": "0"}).stdout
    assert f"job {job} (array): 3 task(s) with cells: " in status
    wait_done(job)
    status = harness("status", str(out)).stdout
    assert "12 of 12 cells recorded (12 ok)" in status, status + logs(out)
    assert "(array): 3 task(s) with cells: 3 done" in status, status  # cells, tasks agree
    slurm_rows = Store(out).cells()
    assert set(slurm_rows["slurm_job_id"]) == {f"{job}_{k}" for k in range(3)}
    assert (slurm_rows["scheduler"] == "slurm").all()
    assert set(slurm_rows["slurm_array_task"]) == {0, 1, 2}
    assert len(list((out / "cells").glob("part-*.parquet"))) == 3  # one per array task
    again = harness("submit", str(grid), "--out", str(out))
    assert again.returncode == 0 and "nothing to submit" in again.stdout
    assert len(json.loads((out / "slurm" / "jobs.json").read_text())) == 1

    local = harness("run", str(grid), "--out", str(tmp_path / "local"), "--backend", "local",
                    "--workers", "2", "--quiet")
    assert local.returncode == 0, local.stderr
    local_rows = Store(tmp_path / "local").cells()
    cols = [c for c in deterministic_metric_columns() if slurm_rows[c].notna().any()]
    a = slurm_rows.set_index("cell_id").sort_index()
    b = local_rows.set_index("cell_id").sort_index()
    assert list(a.index) == list(b.index) and {"probe_value", "probe_steps"} <= set(cols)
    for col in cols:  # bitwise: numbers as floats (NaN equals NaN), strings as they are
        if pd.api.types.is_numeric_dtype(a[col]):
            np.testing.assert_array_equal(a[col].to_numpy(float), b[col].to_numpy(float),
                                          err_msg=col)
        else:
            assert a[col].fillna("<null>").tolist() == b[col].fillna("<null>").tolist(), col


BURN = SLEEPY.replace("sleepy", "burn").replace("sleep_s: 1.5", "spin_s: 3")  # CPU-bound


def cluster_shares_cores() -> bool:
    """Whether the local cluster's two nodes offer the same cores of this host (it does
    with fewer than 4 CPUs: slurm/local-cluster.sh)."""
    return bool(location.nodes_sharing_cores("n1"))


def test_array_cells_never_stack_unseen_on_one_core(write_grid, tmp_path):
    """Eight CPU-bound cells, one array task each. Where the nodes' cores are disjoint no
    two cells ran on one core at once (from the rows' cores and timestamps); where they are
    not, every row says placement was not enforced and why, and status and report say so."""
    grid, out = write_grid(BURN), tmp_path / "burn"
    job = submit(str(grid), "--out", str(out), "--mode", "array", "--shards", "8")
    wait_done(job)
    df = Store(out).cells()
    assert len(df) == 8 and (df["status"] == "ok").all(), logs(out)
    assert (df["scheduler"] == "slurm").all() and set(df["slurm_array_task"]) == set(range(8))
    assert harness("report", str(out)).returncode == 0
    report, status = (out / "report.md").read_text(), harness("status", str(out)).stdout
    assert f"| slurm {job}_0 |" in report  # each run's job in the provenance table
    if cluster_shares_cores():
        assert (df["placement"] == "unenforced").all(), df["placement"]
        assert df["placement_note"].str.contains("Slurm nodes n1, n2 share one host").all()
        for text in (report, status):
            assert "Placement was not enforced for 8 of 8 cells" in text, text
    else:
        assert (df["placement"] == "pinned").all() and (audit.oversubscribed(df) == 0).all()


def test_mpi_mode_spreads_ranks_over_both_nodes(write_grid, tmp_path):
    grid, out = write_grid(SLEEPY), tmp_path / "mpi"
    job = submit(str(grid), "--out", str(out), "--mode", "mpi", "--nodes", "2",
                 "--tasks-per-node", "2")
    wait_done(job)
    df = Store(out).cells()
    assert len(df) == 8 and (df["status"] == "ok").all(), logs(out)
    assert set(df["node"]) == {"n1", "n2"} and set(df["rank"]) == {1, 2, 3}
    assert (df["backend"] == "mpi").all() and set(df["slurm_job_id"]) == {job}


def rank_process(job: str, rank: int) -> int:
    """PID of the harness process of MPI rank ``rank`` in Slurm job ``job``."""
    found: list[int] = []

    def look() -> bool:
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                env = (proc / "environ").read_bytes().split(b"\0")
                args = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if (f"SLURM_JOB_ID={job}".encode() in env and f"PMI_RANK={rank}".encode() in env
                    and b"run" in args and b"harness.worker" not in args):
                found.append(int(proc.name))
                return True
        return False

    wait_until(f"a process of rank {rank} in job {job}", look)
    return found[0]


def held_in_order(first: Path, then: Path) -> str:
    """Three probe cells held until ``first`` exists (one per MPI worker rank at the first
    hand-out), then nine held until ``then`` exists (in that order: ``order: file``)."""
    return f"""name: lost
order: file
experiments:
  - problem: probe
    params: {{size: 10}}
    seeds: [0, 1, 2]
    strategies:
      - probe: {{wait_for: "{first}"}}
  - problem: probe
    params: {{size: 10}}
    seeds: [0, 1, 2, 3, 4, 5, 6, 7, 8]
    strategies:
      - probe: {{wait_for: "{then}"}}
"""


def statuses(out: Path) -> Counter:
    return Counter(s for s, _ in Store(out).latest_status().values())


def test_mpi_mode_survives_lost_ranks_and_every_cell_ends_with_a_row(write_grid, tmp_path):
    """A lost rank costs only its cell while others live; once every worker rank is lost,
    each cell not yet handed out still gets a row that names why."""
    from harness.driver import plan_run
    from harness.grid import load_grid

    first, then, out = tmp_path / "first", tmp_path / "then", tmp_path / "lost"
    grid = write_grid(held_in_order(first, then))
    job = submit(str(grid), "--out", str(out), "--mode", "mpi", "--nodes", "2",
                 "--tasks-per-node", "2",
                 env={"HARNESS_MPI_HEARTBEAT_S": "0.5", "HARNESS_MPI_LOST_S": "6"})
    victims = {rank: rank_process(job, rank) for rank in (1, 2, 3)}
    wait_until("every worker rank inside a held cell", lambda: len(in_flight(out)) == 3)
    os.kill(victims[2], 9)
    wait_until("rank 2's loss recorded", lambda: statuses(out)["error"] == 1)
    first.touch()  # ranks 1 and 3 finish their cells and take cells held by `then`
    wait_until("2 cells ok and ranks 1 and 3 inside held cells",
               lambda: statuses(out)["ok"] == 2 and len(in_flight(out)) == 2)
    os.kill(victims[1], 9)
    os.kill(victims[3], 9)
    wait_done(job)
    df = Store(out).cells()
    assert len(df) == 12, logs(out)  # every cell has a row
    lost = df[df["status"] == "error"]
    assert len(lost) == 3 and lost["error"].str.startswith("RankLost: MPI rank").all(), \
        df[["status", "error", "rank"]]
    ok, unrun = df[df["status"] == "ok"], df[df["status"] == "skipped"]
    assert len(ok) == 2 and set(ok["rank"]) == {1, 3}  # the others went on
    assert len(unrun) == 7 and unrun["error"].str.startswith(
        "NoWorkers: every MPI worker rank (1, 2, 3) was lost").all(), unrun["error"]
    # skipped cells run again by default, lost ranks' cells with --retry-failed
    cells = load_grid(grid).cells
    assert len(plan_run(cells, Store(out)).to_run) == 7
    assert len(plan_run(cells, Store(out), retry_failed=True).to_run) == 10


def test_ray_mode_runs_cells_on_both_nodes(write_grid, tmp_path):
    grid, out = write_grid(SLEEPY), tmp_path / "ray"
    # Two Ray nodes on one host need a loopback address other than 127.0.0.1.
    job = submit(str(grid), "--out", str(out), "--mode", "ray", "--nodes", "2",
                 env={"HARNESS_RAY_NODE_IP": "127.0.0.2"})
    wait_done(job)
    df = Store(out).cells()
    assert len(df) == 8 and (df["status"] == "ok").all(), logs(out)
    assert set(df["node"]) == {"n1", "n2"}  # Ray placed cells on both Slurm nodes
    assert (df["backend"] == "ray").all() and df["worker"].str.startswith("ray-").all()


def job_processes(job: str) -> list[int]:
    """The PIDs of every process of Slurm job ``job`` on this host."""
    ours = {f"SLURM_JOB_ID={job}".encode(), f"SLURM_ARRAY_JOB_ID={job}".encode()}
    return processes(lambda env: not ours.isdisjoint(env))


def let_start(task: str, job: str) -> None:
    """A requeued job waits ~2 minutes (BeginTime) before it may start again; the test
    lifts that delay as an operator would, once the previous run has ended."""
    wait_until(f"{task} requeued", lambda: "PENDING" in queued(task))
    wait_until(f"every process of {task}'s previous run gone", lambda: not job_processes(job))
    # slurmd refuses a restart whose credential was issued in the second its previous run's
    # credential was revoked ("Job credential revoked"): its clock counts whole seconds
    time.sleep(2)
    subprocess.run(["scontrol", "update", f"JobId={task}", "StartTime=now"], check=True)


def runs_ended(out: Path) -> tuple[int, int]:
    """(runs of folder ``out`` that ended, runs started), from their manifests."""
    infos = [json.loads(p.read_text()) for p in (out / "runs").glob("*.json")
             if not p.name.endswith(".inflight.json")]
    return sum("finished_at" in i for i in infos), len(infos)


def test_preempted_grid_completes_after_requeue_with_no_lost_or_duplicated_cell(
        write_grid, tmp_path):
    release, out = tmp_path / "go", tmp_path / "preempt"
    grid = write_grid(held_grid(release, quick=2, held=6))
    job = submit(str(grid), "--out", str(out), "--mode", "array", "--shards", "1",
                 "--cpus-per-task", "2")
    task = f"{job}_0"
    wait_until("2 cells ok and 2 held in flight",
               lambda: statuses(out)["ok"] == 2 and len(in_flight(out)) == 2)
    # Preemption: Slurm kills the running job (SIGTERM to all its processes), requeues it.
    subprocess.run(["scontrol", "requeue", task], check=True)
    let_start(task, job)
    wait_until("the second run holding 2 cells",
               lambda: runs_ended(out) == (1, 2) and len(in_flight(out)) == 2)
    assert statuses(out) == {"ok": 2, "preempted": 2}
    # The time-limit warning: USR1 to the job script, which stops the run and requeues.
    subprocess.run(["scancel", "--signal=USR1", "--batch", task], check=True)
    wait_until("the second run ended", lambda: runs_ended(out) == (2, 2))
    release.touch()
    let_start(task, job)
    wait_done(job)
    rows = Store(out).cells(all_attempts=True)
    ok = rows[rows["status"] == "ok"]
    assert len(ok) == 8 and ok["cell_id"].is_unique, logs(out)  # none lost, none twice
    assert set(rows["status"]) == {"ok", "preempted"}
    preempted = rows[rows["status"] == "preempted"]
    assert len(preempted) == 4 and preempted["cell_id"].isin(ok["cell_id"]).all()
    log = logs(out)
    assert "TERM at" in log and "USR1 at" in log
    assert runs_ended(out) == (3, 3)
    status = harness("status", str(out)).stdout
    assert "8 of 8 cells recorded (8 ok)" in status


def test_status_shows_pending_cells_and_cancel_removes_the_jobs(write_grid, tmp_path):
    grid, out = write_grid(SLEEPY), tmp_path / "held"
    job = submit(str(grid), "--out", str(out), "--shards", "4", "--sbatch=--hold")
    status = harness("status", str(out), env={"HARNESS_SQUEUE_INTERVAL": "0"})
    assert "0 of 8 cells recorded (8 pending)" in status.stdout, status.stdout
    assert f"job {job} (array): 4 task(s) with cells: 4 pending" in status.stdout
    lines = harness("status", str(out), "--cells").stdout.splitlines()[2:]
    assert len(lines) == 8 and all(line.split()[1:3] == ["pending", f"{job}_{i % 4}"]
                                   for i, line in enumerate(lines)), lines
    again = harness("submit", str(grid), "--out", str(out), "--dry-run")
    assert again.returncode == 0 and (out / "slurm" / "array-2.sbatch").exists()
    cancel = harness("cancel", str(out))
    assert cancel.returncode == 0 and f"cancelled job(s) {job}" in cancel.stdout
    wait_done(job)
    status = harness("status", str(out), env={"HARNESS_SQUEUE_INTERVAL": "0"}).stdout
    assert "(8 not run)" in status


def test_squeue_answers_are_cached_between_status_calls(tmp_path):
    cache = tmp_path / "q.json"
    first = scheduler.queue_states(["999999"], cache=cache)
    stamp = cache.stat().st_mtime_ns
    assert scheduler.queue_states(["999999"], cache=cache) == first
    assert cache.stat().st_mtime_ns == stamp  # answered from the cache, squeue not called
