"""The placement audit (harness/audit.py): the rule on measured numbers, and real runs — two
local runs started at once in two folders, each believing it owns every core, are flagged
in status, report and compare; a run alone is flagged only when the machine was busy."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path

import pandas as pd

from harness import audit
from harness.store import Store

from .conftest import HARNESS, ROOT, run_cli

SPIN = """name: spin
experiments:
  - problem: probe
    seeds: [{seeds}]
    strategies:
      - probe: {{spin_s: 4}}
"""


def stamp(second: float) -> pd.Timestamp:
    return pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(seconds=second)


def rows(*cells: tuple) -> pd.DataFrame:
    """Rows from (host, cores, start s, end s, cpus, cpu_s, cpu_wait_s)."""
    return pd.DataFrame([{"host": h, "cores": c, "started_at": stamp(a), "finished_at": stamp(b),
                          "wall_s": b - a, "cpus": n, "cpu_s": cpu, "cpu_wait_s": wait}
                         for h, c, a, b, n, cpu, wait in cells])


def test_the_rule_on_measured_numbers():
    # (cpu_s, cpu_wait_s) as measured on this machine: a CPU-bound cell alone on its core
    # (3.00, 0.00); four on two cores (1.49, 1.52); a sleeping cell under load (0.02, 0.3)
    df = rows(("a", "0", 0, 3, 1, 3.00, 0.003), ("a", "1", 0, 3, 1, 1.49, 1.52),
              ("a", "1", 10, 15, 1, 0.02, 0.30), ("a", "1", 20, 23, 1, 2.0, None))
    flags = audit.timing_flags(df)
    assert flags[0] is None  # idle: got 99.9%
    assert flags[1] == "got 50% of the CPU time it was ready to use"
    assert flags[2] is None and flags[3] is None  # not CPU-bound; no run-queue measure
    assert audit.summary(df).startswith("the timings of 1 of 4 cells are contaminated")


def test_cells_sharing_cores_at_once_are_flagged_from_the_rows_alone():
    df = rows(("a", "0", 0, 10, 1, 0, 0), ("a", "0", 5, 15, 1, 0, 0),  # one core, overlapping
              ("b", "0", 5, 15, 1, 0, 0),  # another host
              ("a", "1", 0, 10, 1, 0, 0), ("a", "1", 10.2, 20, 1, 0, 0),  # one after another
              ("c", "0,1", 0, 10, 1, 0, 0), ("c", "0,1", 0, 10, 1, 0, 0),  # two on two cores
              ("d", "0,1", 0, 10, 1, 0, 0), ("d", "0,1", 0, 10, 1, 0, 0),
              ("d", "0,1", 0, 10, 1, 0, 0),  # three unpinned cells on two cores
              ("e", "0,1", 0, 20, 1, 0, 0), ("e", "0,1", 0, 9, 1, 0, 0),
              ("e", "0,1", 10, 20, 1, 0, 0))  # two workers (Ray): never three at once
    assert audit.oversubscribed(df).tolist() == [1, 1, 0, 0, 0, 0, 0, 2, 2, 2, 0, 0, 0]


def busy_jiffies() -> int:
    """Busy time of every CPU of the machine (``/proc/stat``, clock ticks)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]  # all but idle and iowait


def test_a_run_alone_is_flagged_only_when_something_else_was_busy(write_grid, tmp_path):
    """On an idle machine the audit flags nothing. Whether the machine was idle is measured
    independently: the CPU time of every process on it (``/proc/stat``) minus this run's."""
    grid, out = write_grid(SPIN.format(seeds="0")), tmp_path / "alone"
    t0, busy0 = time.monotonic(), busy_jiffies()
    mine0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = run_cli("run", str(grid), "--out", str(out), "--backend", "local", "--quiet")
    assert done.returncode == 0, done.stderr
    mine1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    ours = sum(getattr(mine1, f) - getattr(mine0, f) for f in ("ru_utime", "ru_stime"))
    others = (busy_jiffies() - busy0) / os.sysconf("SC_CLK_TCK") - ours
    df = Store(out).cells()
    # a spinning cell is ready to run all its 4 s: on a CPU or waiting for one
    assert (df["cpu_s"] + df["cpu_wait_s"] > 3.5).all(), df[["cpu_s", "cpu_wait_s"]]
    assert (df["placement"] == "pinned").all() and df["placement_note"].isna().all()
    flagged = audit.timing_flags(df).notna().any()
    # others: CPU-seconds other processes used meanwhile, at most (elapsed × cores)
    assert not flagged or others > 0.1 * (time.monotonic() - t0), (others, df["cpu_wait_s"])


def test_two_runs_at_once_in_two_folders_are_flagged_in_status_report_and_compare(
        write_grid, tmp_path):
    """Each run places one CPU-bound cell per core it can use, believing it owns them all:
    together twice as many cells as cores. No row of either folder can see the other
    folder's cells; each process's own measure does."""
    n = len(os.sched_getaffinity(0))
    grid = write_grid(SPIN.format(seeds=", ".join(map(str, range(n)))))
    outs = [tmp_path / "first", tmp_path / "second"]
    procs = [subprocess.Popen([*HARNESS, "run", str(grid), "--out", str(o), "--backend", "local",
                               "--quiet"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for o in outs]
    for p in procs:
        assert p.wait(timeout=600) == 0, p.stderr.read()
        assert f"audit: The timings of {n} of {n} cells are contaminated" in p.stdout.read()
    for out in outs:
        df = Store(out).cells()
        assert (df["status"] == "ok").all() and (df["placement"] == "pinned").all()
        assert (audit.oversubscribed(df) == 0).all()  # the folder's own rows look clean
        share = df["cpu_s"] / (df["cpu_s"] + df["cpu_wait_s"])
        assert (share < audit.MIN_SHARE).all(), share
        expected = f"The timings of {n} of {n} cells are contaminated"
        status = run_cli("status", str(out))
        assert status.returncode == 0 and f"audit: {expected}" in status.stdout, status.stdout
        assert run_cli("report", str(out)).returncode == 0
        text = (out / "report.md").read_text()
        assert expected in text and "left out of timing verdicts" in text
    compare = run_cli("compare", *map(str, outs))
    shown = compare.stdout + (outs[1] / "compare.md").read_text()
    assert "placement audit" in shown.lower() and "contaminated" in shown, compare.stdout
