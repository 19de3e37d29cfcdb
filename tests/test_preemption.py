"""Stopping a run from outside (SIGTERM: Slurm preemption, scancel; SIGUSR1: the time-limit
warning) and sharded runs sharing one folder. Real processes and signals, no Slurm needed."""

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.store import Store
from tests.conftest import ROOT

HARNESS = [sys.executable, "-m", "harness.cli"]
SLOW = """name: slow
seeds: [0, 1, 2, 3, 4, 5]
experiments:
  - problem: probe
    strategies:
      - probe: {sleep_s: 2.0}
"""


def wait_for_rows(out: Path, n: int, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while len(Store(out).latest_status()) < n:
        assert time.time() < deadline, f"fewer than {n} cells finished in {timeout} s"
        time.sleep(0.1)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_records_in_flight_cells_preempted_and_rerun_completes(write_grid, tmp_path,
                                                                     sig):
    grid, out = write_grid(SLOW), tmp_path / "out"
    cmd = [*HARNESS, "run", str(grid), "--out", str(out), "--backend", "local",
           "--workers", "2", "--quiet"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    wait_for_rows(out, 2)
    time.sleep(0.5)  # the next two cells are in flight
    if sig == signal.SIGTERM:
        status = subprocess.run([*HARNESS, "status", str(out)], cwd=ROOT, capture_output=True,
                                text=True).stdout
        assert re.search(r"[12] running", status), status
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "recorded 'preempted'" in err
    first = Store(out).cells(all_attempts=True)
    stopped = first[first["status"] == "preempted"]
    assert len(stopped) == 2 and stopped["error"].str.startswith("Preempted: SIGTERM").all()
    assert not list((out / "runs").glob("*.inflight.json"))
    if sig != signal.SIGTERM:
        return  # the rerun does not depend on which signal stopped the run (test time)

    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    rows = Store(out).cells(all_attempts=True)
    ok = rows[rows["status"] == "ok"]
    assert len(ok) == 6 and ok["cell_id"].is_unique  # every cell ok exactly once
    retried = rows[rows["cell_id"].isin(stopped["cell_id"])]
    assert sorted(retried["status"]) == ["ok", "ok", "preempted", "preempted"]
    assert (retried[retried["status"] == "ok"]["attempt"] == 2).all()


def test_a_killed_worker_process_is_preempted_not_failed(write_grid, tmp_path):
    """Slurm sends SIGTERM to every process of the job, the cell's worker process included;
    if it dies of that before the driver reacts, the cell is still `preempted` (rerun by
    default), not an error (kept until --retry-failed)."""
    grid, out = write_grid(SLOW.replace("seeds: [0, 1, 2, 3, 4, 5]", "seeds: [0]")), \
        tmp_path / "out"
    proc = subprocess.Popen([*HARNESS, "run", str(grid), "--out", str(out), "--backend",
                             "local", "--workers", "1", "--quiet"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    child = None
    while child is None:  # the worker process: python -m harness.worker, child of the driver
        assert time.time() < deadline and proc.poll() is None
        ps = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(proc.pid)],
                            capture_output=True, text=True).stdout
        pids = [int(line.split()[0]) for line in ps.splitlines() if "harness.worker" in line]
        child = pids[0] if pids else None
        time.sleep(0.1)
    runs = out / "runs"
    while not any(runs.glob("*.inflight.json")) or "[]" in next(
            runs.glob("*.inflight.json")).read_text():
        assert time.time() < deadline
        time.sleep(0.05)
    subprocess.run(["kill", "-TERM", str(child)], check=True)
    proc.communicate(timeout=60)
    rows = Store(out).cells(all_attempts=True)
    assert list(rows["status"]) == ["preempted"], rows[["status", "error"]]
    assert "stopped by SIGTERM" in rows["error"].iloc[0]


def test_shards_share_a_folder_but_exclude_a_full_run(write_grid, tmp_path):
    grid, out = write_grid(SLOW.replace("2.0", "0.5")), tmp_path / "out"
    with Store(out).lock("0/3"):  # as if shard 0/3 were running
        for args, busy in ((["--shard", "0/3"], True), ([], True), (["--shard", "1/3"], False)):
            proc = subprocess.run([*HARNESS, "run", str(grid), "--out", str(out), "--backend",
                                   "local", "--quiet", *args], cwd=ROOT, capture_output=True,
                                  text=True, timeout=120)
            assert (proc.returncode == 2) == busy, (args, proc.stderr)
            assert ("the folder is in use" in proc.stderr) == busy

    procs = [subprocess.Popen([*HARNESS, "run", str(grid), "--out", str(out), "--backend",
                               "local", "--workers", "1", "--shard", f"{i}/3"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert outs[1].startswith("shard 1/3 of slow: 2 cells (2 ok); ran 0 now")  # ran above
    assert outs[0].startswith("shard 0/3 of slow: 2 cells (2 ok); ran 2 now")
    df = pd.read_parquet(out / "cells")
    assert len(df) == 6 and df["cell_id"].is_unique and (df["status"] == "ok").all()
    status = subprocess.run([*HARNESS, "status", str(out)], cwd=ROOT, capture_output=True,
                            text=True)
    assert "6 of 6 cells recorded (6 ok)" in status.stdout
