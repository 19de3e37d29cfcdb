"""The cost model and the cost before the run: `harness estimate`, `harness submit
--max-cost` and the time limit sized from the prediction.

The model is checked on rows of a known law (a power law in a swept size), and end to end
on real runs of the probe: cells that sleep a stated time, whose wall time does not depend
on how busy the machine is, so the checks hold with other work running beside them.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from harness.cell import Resources, make_cell
from harness.cost import DEFAULT, DEFAULT_WALL_S, FITTED, GROUP, SEEN, CostModel, history_folders
from harness.driver import run_grid
from harness.errors import InputError
from harness.estimate import Budget, Estimate, makespan
from harness.grid import load_grid
from harness.slurm.directives import Request
from harness.slurm.submit import sized_for
from harness.store import load_cells
from tests.conftest import run_cli

# What a prediction of the probe's sleeping cells may be off by, as a factor: their wall
# time is the sleep plus a few milliseconds of set-up, on a busy machine as on an idle one.
PROBE_FACTOR = 1.5


def probe_grid(sleeps: list[float], seeds: list[int], name: str = "cost") -> str:
    return (f"name: {name}\nseeds: {seeds}\nexperiments:\n  - problem: probe\n"
            f"    params: {{size: 50}}\n    strategies:\n"
            f"      - probe: {{sleep_s: {sleeps}, steps: 1}}\n")


def rows_of(walls: dict[int, list[float]], strategy_params: dict | None = None
            ) -> pd.DataFrame:
    """Cells rows of probe cells of ``size`` n with the given wall times."""
    rows = [{"problem": "probe", "strategy": "probe",
             "params": make_cell("probe", "probe", {"size": n}, strategy_params).params_json,
             "wall_s": w, "peak_rss_mb": 2 * n**0.5}
            for n, ws in walls.items() for w in ws]
    return pd.DataFrame(rows)


def test_makespan_starts_cells_in_order_on_free_cores():
    assert makespan([], [], 4) == 0
    assert makespan([3, 3, 3, 3], [1] * 4, 2) == 6
    assert makespan([5, 1, 1, 1, 1, 1], [1] * 6, 2) == 5  # the short ones fill the other
    # a 2-core cell waits until both cores are free; one larger than the node takes all
    assert makespan([1, 4, 2], [1, 1, 2], 2) == 6
    assert makespan([2, 2], [8, 1], 4) == 4


def test_model_fits_a_power_law_in_the_swept_size_and_says_how():
    rng = np.random.default_rng(0)
    law = {n: [1e-4 * n**1.5 * math.exp(rng.normal(0, 0.05)) for _ in range(3)]
           for n in (100, 200, 400, 800)}
    model = CostModel(rows_of(law))
    unseen = model.predict(make_cell("probe", "probe", {"size": 1600}))
    assert unseen.basis == FITTED
    assert unseen.wall_s == pytest.approx(1e-4 * 1600**1.5, rel=0.15)  # extrapolated
    assert unseen.peak_rss_mb == pytest.approx(2 * 1600**0.5)  # a power law too
    seen = model.predict(make_cell("probe", "probe", {"size": 400}, seed=7))
    assert seen.basis == SEEN and seen.wall_s == pytest.approx(np.median(law[400]))
    error = model.error  # leave-one-out on the noise of 5% in log space
    assert error.seen_rows == error.new_rows == 12
    assert 1.0 < error.seen < 1.15 and 1.0 < error.new < 1.2
    other = model.predict(make_cell("probe", "probe", {"size": 100}, {"steps": 9}))
    assert other.basis == FITTED  # steps did not vary among the rows: not a regressor
    # nothing varies: the group's median; no row of the group: the stated default
    flat = CostModel(rows_of({100: [1.0, 2.0, 4.0]}))
    assert flat.predict(make_cell("probe", "probe", {"size": 5})).basis == GROUP
    assert flat.predict(make_cell("probe", "probe", {"size": 5})).wall_s == pytest.approx(2)
    empty = CostModel(rows_of({}).reindex(columns=["problem", "strategy", "params",
                                                   "wall_s", "peak_rss_mb"]))
    guess = empty.predict(make_cell("probe", "probe"))
    assert (guess.basis, guess.wall_s, guess.peak_rss_mb) == (DEFAULT, DEFAULT_WALL_S, None)
    assert empty.error.seen is None and "not measured" in empty.error.text()


def test_a_categorical_parameter_gets_its_own_level_and_an_unseen_one_the_median():
    rows = pd.concat([rows_of({100: [1.0, 1.1], 200: [2.0, 2.1]}, {"fail": "none"}),
                      rows_of({100: [3.0, 3.3], 200: [6.0, 6.3]}, {"fail": "nan"})])
    model = CostModel(rows)
    slow = model.predict(make_cell("probe", "probe", {"size": 400}, {"fail": "nan"}))
    fast = model.predict(make_cell("probe", "probe", {"size": 400}, {"fail": "none"}))
    assert slow.basis == fast.basis == FITTED and slow.wall_s / fast.wall_s == \
        pytest.approx(3, rel=0.1)
    odd = model.predict(make_cell("probe", "probe", {"size": 400}, {"fail": "raise"}))
    assert odd.basis == GROUP  # no coefficient for a value no row had


def test_budget_parses_units_and_refuses_in_one_line():
    assert Budget.parse("2") == Budget(2.0, "cpu-h", "2")
    assert Budget.parse("0.5gpu-h").unit == "gpu-h" and Budget.parse(" 3 CPU-h").amount == 3
    for bad in ("", "-1", "2h", "two"):
        with pytest.raises(InputError, match="allowed: a number of CPU-hours"):
            Budget.parse(bad)
    model = CostModel(rows_of({50: [36.0]}))
    cells = [make_cell("probe", "probe", {"size": 50}, seed=s,
                       resources=Resources(cpus=2, gpus=0.5)) for s in range(50)]
    est = Estimate.of(cells, model)  # 50 cells × 36 s × 2 cores = 1 CPU-hour
    assert est.cpu_hours == pytest.approx(1.0) and est.gpu_hours == pytest.approx(0.25)
    Budget.parse("1cpu-h").check(est)
    with pytest.raises(InputError) as refused:
        Budget.parse("0.2gpu-h").check(est)
    assert str(refused.value).startswith("harness submit: --max-cost 0.2gpu-h: the predicted "
                                         "cost is 0.25 GPU-hours (50 cells to run")


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A first run of short sleeping probe cells (the history), the estimate of a grid
    of longer ones from it, and what running that grid then measured."""
    tmp = tmp_path_factory.mktemp("cost")
    first, second = tmp / "first.yaml", tmp / "second.yaml"
    first.write_text(probe_grid([0.2, 0.4, 0.8], [0, 1]))
    second.write_text(probe_grid([1.0, 1.6], [0, 1]))
    assert run_grid(load_grid(first), tmp / "history", backend="local", workers=2,
                    progress=False).all_ok
    grid = load_grid(second)
    est = Estimate.of(grid.cells, CostModel.from_folders([tmp / "history"]))
    assert run_grid(grid, tmp / "out", backend="local", workers=2, progress=False).all_ok
    return tmp, est, load_cells(tmp / "out")


def test_estimate_of_longer_cells_is_within_its_factor_of_their_measured_cost(measured):
    _, est, rows = measured
    assert {p.basis for p in est.predictions} == {FITTED}  # sleeps no row had: extrapolated
    ratio = est.cpu_hours / rows["cpu_hours"].sum()
    assert 1 / PROBE_FACTOR < ratio < PROBE_FACTOR, ratio
    assert est.model.error.new < PROBE_FACTOR
    # on 2 cores the four cells (1.0 and 1.6 s, twice) take about 2.6 s
    assert 2.6 / PROBE_FACTOR < est.wall_s(2) < 2.6 * PROBE_FACTOR


def test_harness_estimate_prints_the_cost_of_what_is_left(measured):
    tmp, _, _ = measured
    more = tmp / "more.yaml"  # the second grid and one sleep more, into the second folder
    more.write_text(probe_grid([1.0, 1.6, 2.4], [0, 1]))
    proc = run_cli("estimate", str(more), "--out", str(tmp / "out"), "--history",
                   str(tmp / "history"), "--backend", "local", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert "grid cost: 6 cells\n2 cells to run (4 already ok)\n" in text
    assert "cost model: 10 earlier ok rows" in text and "predicted by: 2 regression" in text
    assert "<- --workers" in text and "no history" not in text
    hours = float(text.split("predicted: ")[1].split(" CPU-hours")[0])
    assert 2 * 2.4 / 3600 / PROBE_FACTOR < hours < 2 * 2.4 / 3600 * PROBE_FACTOR
    with pytest.raises(InputError, match=r"--history '.*nowhere' is not allowed; allowed: "
                                         r"the output folder of an earlier 'harness run'"):
        history_folders([str(tmp / "history"), str(tmp / "nowhere")])


def test_submit_refuses_above_max_cost_and_sizes_its_time_from_the_prediction(measured):
    tmp, _, _ = measured
    grid = tmp / "second.yaml"
    refused = tmp / "refused"
    proc = run_cli("submit", str(grid), "--out", str(refused), "--history",
                   str(tmp / "history"), "--max-cost", "0.0001cpu-h", "--dry-run")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert re.search(r"--max-cost 0.0001cpu-h: the predicted cost is 0.00\d+ CPU-hours \(4 "
                     r"cells to run, error ×1.\d\d per cell\), above it", proc.stderr)
    assert not refused.exists()  # refused before anything is written
    proc = run_cli("submit", str(grid), "--out", str(tmp / "sized"), "--history",
                   str(tmp / "history"), "--max-cost", "1", "--shards", "2", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    # each task sleeps about 2.6 s: the limit is the start-up and warning margins
    assert "#SBATCH --time=0:05:00" in proc.stdout
    assert "--time 0:05:00: the predicted" in proc.stdout
    # without history the time limit is left to the partition, and the user told why
    unknown = Estimate.of(load_grid(grid).cells, CostModel.from_folders([]))
    req, why = sized_for(Request(mode="array", shards=2), unknown.cells, unknown)
    assert req.time is None and why.startswith("--time not sized: 4 cell(s) have no history")
    given, why = sized_for(Request(mode="array", time="1:00:00"), unknown.cells, unknown)
    assert given.time == "1:00:00" and why is None
