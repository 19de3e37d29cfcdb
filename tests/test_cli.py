"""The harness command end to end, in subprocesses, as a user runs it."""

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from harness.store import Store, load_cells, load_history

from .conftest import HARNESS, ROOT, WAIT_S, held_grid, in_flight, run_cli, wait_until

SMALL = """
name: small
seeds: [0, 1]
experiments:
  - problem: probe
    params: {size: [32, 64]}
    strategies: [probe, {probe: {steps: 5}}]
"""


def test_malformed_grid_exits_2_with_one_line_and_creates_nothing(write_grid, tmp_path):
    grid = write_grid(SMALL.replace("size: [32, 64]", "size: [0, 64]"))
    out = tmp_path / "out"
    proc = run_cli("run", str(grid), "--out", str(out))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(grid) in lines[0] and "params.size" in lines[0] and "0 is out of range" in \
        lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout
    assert not out.exists()


def test_bad_flags_exit_2(write_grid, tmp_path):
    grid = write_grid(SMALL)
    for args in (["--workers", "0"], ["--backend", "spark"], ["--address", "x:1",
                                                              "--backend", "local"]):
        proc = run_cli("run", str(grid), "--out", str(tmp_path / "o"), *args)
        assert proc.returncode == 2, args
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "o").exists()
    assert run_cli("status", str(tmp_path / "nowhere")).returncode == 2


def test_dry_run_lists_cells_without_running(write_grid, tmp_path):
    proc = run_cli("run", str(write_grid(SMALL)), "--out", str(tmp_path / "o"), "--dry-run")
    assert proc.returncode == 0
    assert proc.stdout.strip().splitlines()[-1] == "8 cells in grid 'small'"
    assert not (tmp_path / "o").exists()


def test_run_status_report_list(write_grid, tmp_path):
    out = tmp_path / "out"
    proc = run_cli("run", str(write_grid(SMALL)), "--out", str(out), "--backend", "local",
                   "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert "8 cells (8 ok)" in proc.stdout
    assert "[8/8] ok" in proc.stderr  # plain log lines when not on a terminal
    status = run_cli("status", str(out))
    assert status.returncode == 0 and "8 of 8 cells recorded (8 ok)" in status.stdout
    report = run_cli("report", str(out))
    assert report.returncode == 0
    assert (out / "report.md").exists() and (out / "report.html").exists()
    # status reads the folder's expanded grid and the rows' core columns: no plug-in, no torch
    probe = subprocess.run(
        [sys.executable, "-c", "import sys; from harness.cli import main; "
         f"code = main(['status', {str(out)!r}]); print(code, 'torch' in sys.modules)"],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert probe.stdout.splitlines()[-1] == "0 False", probe.stdout + probe.stderr
    (out / "grid.cells.json").write_text("{}")  # damaged or stale: expanded again, same answer
    assert run_cli("status", str(out)).stdout == status.stdout
    listing = run_cli("list")
    assert "strategy probe" in listing.stdout and "spin_s" in listing.stdout
    for cmd in ("run", "status", "report", "list"):
        assert run_cli(cmd, "--help").returncode == 0


def test_report_out_keeps_one_report_per_claims_folder(write_grid, tmp_path):
    out = tmp_path / "out"
    grid = write_grid("name: p\nseeds: [0, 1]\nexperiments:\n  - problem: probe\n"
                      "    params: {size: [10, 20]}\n    strategies: [probe]\n")
    assert run_cli("run", str(grid), "--out", str(out), "--backend", "local").returncode == 0
    reports = {}
    for claim in ("first_claim", "second_claim"):
        claims = tmp_path / claim
        claims.mkdir()
        (claims / "mine.yaml").write_text(
            f"paper: P\nfamily: probe\nclaims:\n  - id: c\n    claim: Values are finite "
            f"({claim}).\n    source: s\n    check: {{kind: metric, metric: probe_value, "
            f"strategy: probe, op: '<', threshold: 1.0e9}}\n")
        to = tmp_path / f"report-{claim}"
        proc = run_cli("report", str(out), "--claims", str(claims), "--out", str(to))
        assert proc.returncode == 0, proc.stderr
        written = [Path(p) for p in proc.stdout.split()]
        assert written and all(p.is_relative_to(to) and p.exists() for p in written)
        assert (to / "figures").is_dir()
        reports[claim] = (to / "report.md").read_text()
    first, second = reports["first_claim"], reports["second_claim"]
    assert "first_claim" in first and "second_claim" not in first
    assert "second_claim" in second and "first_claim" not in second
    assert (tmp_path / "report-first_claim" / "report.md").read_text() == first  # untouched
    assert not (out / "report.md").exists() and not (out / "figures").exists()


def test_failed_cells_exit_1_and_are_listed(write_grid, tmp_path):
    grid = write_grid("name: f\nexperiments:\n  - problem: probe\n    strategies:\n"
                      "      - probe\n      - probe: {fail: raise}\n")
    out = tmp_path / "out"
    proc = run_cli("run", str(grid), "--out", str(out), "--backend", "local")
    assert proc.returncode == 1
    assert "1 cell(s) not ok" in proc.stdout and "ValueError: probe asked to fail" in proc.stdout
    status = run_cli("status", str(out))
    assert "1 error" in status.stdout and "probe asked to fail" in status.stdout
    assert len(status.stdout.splitlines()) == 2  # the summary and the failed cell
    every = run_cli("status", str(out), "--cells").stdout.splitlines()
    # in the grid's run order: the two strategies of one block, in the order drawn for it
    assert len(every) == 3 and sorted(line.split()[1] for line in every[1:]) == ["error", "ok"]
    # the swept parameter tells the two cells apart
    assert sorted(line.split()[4] for line in every[1:]) == ["probe[fail=none]",
                                                            "probe[fail=raise]"]
    assert "probe asked to fail" in (out / "logs" / "failures.log").read_text()


def test_kill_9_then_rerun_completes_without_loss_or_duplicates(write_grid, tmp_path):
    release, out = tmp_path / "go", tmp_path / "out"
    grid = write_grid(held_grid(release, quick=3, held=3))
    cmd = [*HARNESS, "run", str(grid), "--out", str(out)]  # the default backend: Ray
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    wait_until("3 cells written and the held ones in flight",
               lambda: len(Store(out).latest_status()) == 3 and in_flight(out), proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = set(Store(out).latest_status())  # from the journal the killed run left
    assert len(finished) == 3 and list((out / "journal").glob("*.jsonl"))
    assert len(load_cells(out)) == 3 and len(load_history(out)) > 0
    release.touch()
    rerun = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=WAIT_S)
    assert rerun.returncode == 0, rerun.stderr
    df = load_cells(out)
    assert len(df) == 6 and df["cell_id"].is_unique and (df["status"] == "ok").all()
    kept = df[df["cell_id"].isin(finished)]
    assert (kept["attempt"] == 1).all()  # finished cells were not run again


def test_kill_9_outside_slurm_leaves_no_cell_running(write_grid, tmp_path):
    release, out = tmp_path / "go", tmp_path / "out"
    grid = write_grid(held_grid(release, quick=0, held=2))
    cmd = [*HARNESS, "run", str(grid), "--out", str(out), "--backend", "local", "--workers",
           "2"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until("both cells in flight", lambda: len(in_flight(out)) == 2, proc)
        lines = run_cli("status", str(out), "--cells").stdout.splitlines()
        assert len([line for line in lines if " running " in line]) == 2, lines
        os.kill(proc.pid, signal.SIGKILL)  # the driver only, as an OOM killer would
        proc.wait()
        lines = run_cli("status", str(out), "--cells").stdout.splitlines()
        assert not [line for line in lines if " running " in line], lines
        assert len([line for line in lines if " not run " in line]) == 2, lines
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the orphaned workers
