"""Stopping a run from outside (SIGTERM: Slurm preemption, scancel; SIGUSR1: the time-limit
warning) at every moment of a run, and sharded runs sharing one folder. Real processes and
signals, no Slurm needed.

No test sleeps and hopes: each waits for the state it signals in. Cells are held in flight
by the probe's ``wait_for`` file until the test releases them, and the driver is held at a
named moment (start-up, the final merge, the exit) by ``HARNESS_PAUSE_AT``
(harness.stopping.pause_point), so the signal lands exactly there on any machine, however
slow or busy."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from harness.shard import Shard
from harness.stopping import PAUSE_ENV
from harness.store import Store
from tests.conftest import ROOT, WAIT_S, held_grid, in_flight, wait_until

HARNESS = [sys.executable, "-m", "harness.cli"]
def start(grid: Path, out: Path, *args: str, pause: str | None = None,
          backend: str = "local") -> subprocess.Popen:
    env = dict(os.environ)
    if pause:
        env[PAUSE_ENV] = pause
    cmd = [*HARNESS, "run", str(grid), "--out", str(out), "--quiet", "--backend", backend,
           *(["--workers", "2"] if backend == "local" else []), *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)


def rerun(grid: Path, out: Path, backend: str = "local") -> subprocess.CompletedProcess:
    proc = start(grid, out, backend=backend)
    stdout, stderr = proc.communicate(timeout=WAIT_S)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def stopped(proc: subprocess.Popen, sig: signal.Signals = signal.SIGTERM) -> str:
    """Send ``sig``; the run must end with exit code 143 and say so; returns stderr."""
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=WAIT_S)
    assert proc.returncode == 143, err
    assert f"stopped by {sig.name}" in err, err
    return err


def stop_at(point: str, grid: Path, out: Path) -> str:
    """Run ``grid`` held at the pause point ``point`` and send SIGTERM there (exit 143)."""
    marker = out.parent / f"paused-at-{point}"
    proc = start(grid, out, pause=f"{point}={marker}")
    wait_until(f"paused at {point}", marker.exists, proc)
    return stopped(proc)


def manifests(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))
            if not p.name.endswith(".inflight.json")]


def test_sigterm_during_start_up_ends_the_run_before_any_cell(write_grid, tmp_path):
    release, out = tmp_path / "go", tmp_path / "out"
    release.touch()
    grid = write_grid(held_grid(release))
    stop_at("startup", grid, out)
    assert Store(out).latest_status() == {}  # no cell ran, none is recorded
    [info] = manifests(out)
    assert info["stopped"].startswith("SIGTERM") and info["cells_finished"] == 0
    assert Store(out).lock_holder() is None and not in_flight(out)
    again = rerun(grid, out)
    assert again.returncode == 0, again.stderr
    assert "held: 4 cells (4 ok); ran 4 now" in again.stdout


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_signal_mid_run_records_the_cells_in_flight_and_a_rerun_completes(
        write_grid, tmp_path, sig):
    release, out = tmp_path / "go", tmp_path / "out"
    grid = write_grid(held_grid(release))
    proc = start(grid, out)
    # the state: the two quick cells written, the two held ones running
    wait_until("2 cells written and 2 in flight",
               lambda: len(Store(out).latest_status()) == 2 and len(in_flight(out)) == 2, proc)
    if sig == signal.SIGTERM:
        status = subprocess.run([*HARNESS, "status", str(out)], cwd=ROOT,
                                capture_output=True, text=True, timeout=WAIT_S).stdout
        assert "2 of 4 cells recorded (2 ok, 2 running)" in status, status
    err = stopped(proc, sig)
    assert "recorded 'preempted'" in err
    first = Store(out).cells(all_attempts=True)
    assert sorted(first["status"]) == ["ok", "ok", "preempted", "preempted"]
    held = first[first["status"] == "preempted"]
    assert held["error"].str.startswith(f"Preempted: {sig.name}").all()
    assert (held["s_wait_for"] == str(release)).all()
    assert not list((out / "runs").glob("*.inflight.json"))
    if sig != signal.SIGTERM:
        return  # the rerun does not depend on which signal stopped the run (test time)

    release.touch()
    again = rerun(grid, out)
    assert again.returncode == 0, again.stderr
    rows = Store(out).cells(all_attempts=True)
    ok = rows[rows["status"] == "ok"]
    assert len(ok) == 4 and ok["cell_id"].is_unique  # every cell ok exactly once
    retried = rows[rows["cell_id"].isin(held["cell_id"])]
    assert sorted(retried["status"]) == ["ok", "ok", "preempted", "preempted"]
    assert (retried[retried["status"] == "ok"]["attempt"] == 2).all()


def test_sigterm_on_the_default_ray_backend_records_the_cells_in_flight(write_grid, tmp_path):
    """``ray.init`` installs SIGTERM handlers of its own; the driver takes the signal back."""
    release, out = tmp_path / "go", tmp_path / "out"
    grid = write_grid(held_grid(release, quick=1, held=1))
    proc = start(grid, out, backend="ray")
    wait_until("1 cell written and 1 in flight",
               lambda: len(Store(out).latest_status()) == 1 and len(in_flight(out)) == 1, proc)
    stopped(proc)
    rows = Store(out).cells(all_attempts=True)
    assert sorted(rows["status"]) == ["ok", "preempted"]


def test_sigterm_during_the_final_merge_and_at_the_exit_keeps_every_cell(write_grid,
                                                                        tmp_path):
    release, out = tmp_path / "go", tmp_path / "out"
    release.touch()
    grid = write_grid(held_grid(release))
    stop_at("merge", grid, out)
    store = Store(out)
    assert sorted(s for s, _ in store.latest_status().values()) == ["ok"] * 4
    assert len(store.history()) > 0 and not in_flight(out)
    assert manifests(out)[0]["cells_finished"] == 4

    # the next run has nothing to run and finishes the merge; a signal at its exit
    stop_at("exit", grid, out)
    assert len(list((out / "cells").glob("*.parquet"))) == 1
    assert not list((out / "journal").glob("*.jsonl"))
    df = pd.read_parquet(out / "cells")
    assert len(df) == 4 and (df["status"] == "ok").all() and (df["attempt"] == 1).all()


def test_a_killed_worker_process_is_preempted_not_failed(write_grid, tmp_path):
    """Slurm sends SIGTERM to every process of the job, the cell's worker process included;
    if it dies of that before the driver reacts, the cell is still `preempted` (rerun by
    default), not an error (kept until --retry-failed)."""
    release, out = tmp_path / "go", tmp_path / "out"
    grid = write_grid(held_grid(release, quick=0, held=1))
    proc = start(grid, out, "--workers", "1")
    wait_until("the held cell in flight", lambda: len(in_flight(out)) == 1, proc)
    ps = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(proc.pid)],
                        capture_output=True, text=True).stdout
    [child] = [int(line.split()[0]) for line in ps.splitlines() if "harness.worker" in line]
    os.kill(child, signal.SIGTERM)
    proc.communicate(timeout=WAIT_S)
    rows = Store(out).cells(all_attempts=True)
    assert list(rows["status"]) == ["preempted"], rows[["status", "error"]]
    assert "stopped by SIGTERM" in rows["error"].iloc[0]


SHARDED = """name: slow
seeds: [0, 1, 2, 3, 4, 5]
experiments:
  - problem: probe
    params: {size: 10}
    strategies: [probe]
"""


def test_shards_share_a_folder_but_exclude_a_full_run(write_grid, tmp_path):
    grid, out = write_grid(SHARDED), tmp_path / "out"
    with Store(out).lock(Shard(0, 3)):  # as if shard 0/3 were running
        for args, busy in ((["--shard", "0/3"], True), ([], True), (["--shard", "1/3"], False)):
            proc = subprocess.run([*HARNESS, "run", str(grid), "--out", str(out), "--backend",
                                   "local", "--quiet", *args], cwd=ROOT, capture_output=True,
                                  text=True, timeout=WAIT_S)
            assert (proc.returncode == 2) == busy, (args, proc.stderr)
            assert ("the folder is in use" in proc.stderr) == busy

    procs = [subprocess.Popen([*HARNESS, "run", str(grid), "--out", str(out), "--backend",
                               "local", "--workers", "1", "--shard", f"{i}/3"], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(3)]
    outs = [p.communicate(timeout=WAIT_S)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    assert outs[1].startswith("shard 1/3 of slow: 2 cells (2 ok); ran 0 now")  # ran above
    assert outs[0].startswith("shard 0/3 of slow: 2 cells (2 ok); ran 2 now")
    df = pd.read_parquet(out / "cells")
    assert len(df) == 6 and df["cell_id"].is_unique and (df["status"] == "ok").all()
    status = subprocess.run([*HARNESS, "status", str(out)], cwd=ROOT, capture_output=True,
                            text=True, timeout=WAIT_S)
    assert "6 of 6 cells recorded (6 ok)" in status.stdout
