"""One behavioural suite for every executor: statuses, identical metrics, history, resume."""

import os

import numpy as np
import pytest

from harness.driver import run_grid
from harness.grid import parse_grid
from harness.store import load_cells, load_history

BACKENDS = ["local", "ray", "mpi"]  # mpi: one rank, in this process (test_mpi.py runs mpiexec)

SUITE = """
name: exec
seeds: [0, 1]
defaults: {timeout_s: 120}
experiments:
  - problem: probe
    params: {size: 50}
    strategies:
      - probe
      - probe: {fail: [raise, nan, oom, crash]}
      - probe: {sleep_s: 60, timeout_s: 2}
  - problem: probe
    params: {size: [32, 96]}
    seeds: [0]
    strategies: [{probe: {steps: 1}}, {probe: {steps: 5, scale: 2.0}}]
"""

EXPECTED = {"none": "ok", "raise": "error", "nan": "diverged", "oom": "oom", "crash": "error"}


@pytest.fixture(scope="module")
def suite_runs(tmp_path_factory, ray_session):
    grid = parse_grid(SUITE, "suite.yaml")
    runs = {}
    for backend in BACKENDS:
        out = tmp_path_factory.mktemp(backend)
        summary = run_grid(grid, out, backend=backend, workers=2, progress=False)
        runs[backend] = (summary, load_cells(out), load_history(out))
    return grid, runs


@pytest.mark.parametrize("backend", BACKENDS)
def test_statuses(suite_runs, backend):
    grid, runs = suite_runs
    summary, df, _ = runs[backend]
    assert len(df) == len(grid.cells) and df["cell_id"].is_unique
    assert not summary.all_ok
    for row in df.itertuples():
        expected = "timeout" if row.s_sleep_s == 60 else EXPECTED[row.s_fail]
        assert row.status == expected, (row.s_fail, row.error)
    assert df.loc[df["status"] == "timeout", "error"].str.contains("timeout_s=2").all()
    crashed = df[df["s_fail"] == "crash"]
    assert crashed["error"].str.contains("WorkerCrashed").all()
    raised = df[df["s_fail"] == "raise"]
    assert raised["traceback"].str.contains("probe asked to fail").all()
    assert (df["backend"] == backend).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_ok_rows_are_complete(suite_runs, backend):
    _, runs = suite_runs
    _, df, hist = runs[backend]
    ok = df[df["status"] == "ok"]
    for col in ("train_s", "eval_s", "setup_s", "wall_s", "peak_rss_mb", "cpu_hours"):
        assert (ok[col] >= 0).all() and ok[col].notna().all(), col
    assert (ok["device"] == "cpu").all()
    assert (ok["train_s"] <= ok["wall_s"]).all()
    # where it ran: its cores (one, its own, where the harness places it) and no GPU
    assert ok["cores"].notna().all() and (ok["gpu_ids"] == "").all()
    if backend != "ray":
        assert (ok["cores"].str.split(",").str.len() == 1).all()
    assert ok["probe_value"].notna().all() and (ok["probe_steps"] == ok["s_steps"]).all()
    # every ok cell logged each of its steps (1, 3 or 5)
    steps = hist[hist["cell_id"].isin(ok["cell_id"])].groupby("cell_id")["step"].count()
    assert steps.to_dict() == ok.set_index("cell_id")["s_steps"].to_dict()


def test_backends_agree_on_statuses_and_metrics(suite_runs):
    _, runs = suite_runs
    a = runs["local"][1].set_index("cell_id").sort_index()
    b = runs["ray"][1].set_index("cell_id").sort_index()
    assert (a["status"] == b["status"]).all()
    ok = a.index[a["status"] == "ok"]
    for metric in ("probe_value", "probe_steps"):
        x, y = a.loc[ok, metric].to_numpy(float), b.loc[ok, metric].to_numpy(float)
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=0, equal_nan=True, err_msg=metric)


RESUME = """
name: resume
seeds: [0, 1, 2]
experiments:
  - problem: probe
    strategies: [probe, {probe: {fail: raise}}]
"""


@pytest.mark.parametrize("backend", BACKENDS)
def test_resume_retry_and_force(tmp_path, backend, ray_session):
    grid = parse_grid(RESUME, "resume.yaml")
    first = run_grid(grid, tmp_path, backend=backend, workers=2, progress=False)
    assert first.ran == 6 and first.counts == {"ok": 3, "error": 3}
    again = run_grid(grid, tmp_path, backend=backend, workers=2, progress=False)
    assert again.ran == 0 and again.counts == first.counts
    retry = run_grid(grid, tmp_path, backend=backend, workers=2, retry_failed=True,
                     progress=False)
    assert retry.ran == 3
    df = load_cells(tmp_path)
    assert sorted(df["attempt"]) == [1, 1, 1, 2, 2, 2]
    assert set(df.loc[df["attempt"] == 2, "status"]) == {"error"}
    forced = run_grid(grid, tmp_path, backend=backend, workers=2, force=True, progress=False)
    assert forced.ran == 6
    assert sorted(load_cells(tmp_path)["attempt"]) == [2, 2, 2, 3, 3, 3]
    assert len(load_cells(tmp_path, all_attempts=True)) == 15


def test_ray_runs_cells_at_the_drivers_priority(ray_session):
    """Ray's default runs its workers at niceness 15, where any other process on the node
    takes nearly all of the CPU from the cells (ray_environment sets it to 0)."""
    from harness.executors.ray_executor import CellActor

    actor = ray_session.remote(CellActor).remote(False)
    try:
        assert ray_session.get(actor.niceness.remote()) == os.nice(0)
    finally:
        ray_session.kill(actor)
