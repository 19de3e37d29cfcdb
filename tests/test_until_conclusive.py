"""Run until conclusive: the error rates through the real judging code under optional
stopping, and the loop on a real grid (a settled claim buys nothing, an open one buys until
it closes or the budget ends, a killed run resumes the same plan).

The simulated studies go through ``judge_claim`` — the function the report and the loop
judge every claim with — with the ratio check on result rows built as a run writes them,
looking at 3, 5 and 7 seeds and stopping at the first conclusive look, exactly as
``harness run --until-conclusive`` does. With the true ratio at the threshold, each wrong
verdict must stay within 2.5% + 3 Monte Carlo standard errors (1000 studies: 3.98%), also
with the machine drifting along the grid's run order (the AR(1) model of test_verdicts);
the fixed-n interval read at every look must err more than that (so the test can fail).
With a clear effect the run must end conclusive with fewer seeds on average than the
fixed-n t test of equal power.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from harness.grid import load_grid
from harness.looks import SETTLED, ClaimState, LookPlan
from harness.report import ReportContext
from harness.report.checks import metric_check, ratio_check
from harness.report.claims import judge_claim
from harness.sequential import Design
from harness.stats import ALPHA
from harness.store import Store
from tests.conftest import HARNESS, wait_until
from tests.test_verdicts import GRID, row

STUDIES = 1000
FIRST, BATCH, MOST = 3, 2, 7  # looks at 3, 5 and 7 seeds
BOUND = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / STUDIES)  # 3.98%
TRUE_RATIO = 1.3
CHECK = {"metric": "train_s", "strategy": "probe[steps=5]", "baseline": "probe",
         "op": "<", "threshold": TRUE_RATIO}
PROCESSES = 2  # the studies are split over processes: pandas makes each judging ~10 ms


@pytest.fixture(scope="module")
def scope(tmp_path_factory) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of a probe grid (two instances × two variants) at MOST seeds, in the run
    order, and which of them are the variant the claim is about."""
    path = tmp_path_factory.mktemp("grid") / "drift.yaml"
    path.write_text(GRID.format(seeds=list(range(MOST)), order=""))
    cells = sorted(load_grid(path).cells, key=lambda c: c.run_order)
    base = pd.DataFrame([row(c.problem, c.strategy, c.seed, c.problem_params,
                             c.strategy_params) for c in cells])
    return base, (base["s_steps"] == 5).to_numpy()


def _chunk(scope, ratio: float, noise: float, drift: float, seed: int, studies: int,
           fixed_n: bool) -> list[tuple[str, int]]:
    """(outcome, seeds at stop) of ``studies`` studies, each stopped at its first
    conclusive look; ``drift``: the AR(1) sd along the run order; ``fixed_n``: read the
    fixed-n interval at every look instead (what the design corrects)."""
    base, fast = scope
    plan = LookPlan("pocock", BATCH, MOST, None, "sim", claims={"c": ClaimState("c", FIRST)})
    ctx = ReportContext(out=None, cells=base, history=pd.DataFrame(),
                        looks=None if fixed_n else plan)
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(studies):
        walk = np.empty(len(base))
        walk[0] = rng.normal(0, drift)
        for i in range(1, len(base)):
            walk[i] = 0.95 * walk[i - 1] + rng.normal(0, drift * math.sqrt(1 - 0.95**2))
        times = np.exp(walk) * rng.lognormal(0, noise, len(base)) * np.where(fast, ratio, 1)
        rows = base.assign(train_s=times)
        for n in plan.looks(FIRST):
            outcome = judge_claim(ratio_check, CHECK, rows[rows["seed"] < n], ctx, "c")[
                0].outcome
            if outcome in SETTLED:
                break
        found.append((outcome, n))
    return found


def _studies(scope, ratio: float, noise: float, drift: float, seed: int,
             studies: int = STUDIES, fixed_n: bool = False) -> tuple[float, float, float]:
    """(share reproduced, share not reproduced, mean seeds at stop) of ``studies``."""
    share = -(-studies // PROCESSES)
    with ProcessPoolExecutor(PROCESSES, mp_context=get_context("fork")) as pool:
        parts = pool.map(_chunk, *zip(*[
            (scope, ratio, noise, drift, seed * 100 + i, min(share, studies - i * share),
             fixed_n) for i in range(PROCESSES)], strict=True))
        found = [x for part in parts for x in part]
    outcomes = np.array([o for o, _ in found])
    return (float(np.mean(outcomes == "reproduced")),
            float(np.mean(outcomes == "not reproduced")),
            float(np.mean([n for _, n in found])))


@pytest.fixture(scope="module")
def at_the_threshold(scope) -> dict[str, tuple[float, float]]:
    """(share reproduced, share not reproduced) with the true ratio at the threshold, on a
    steady machine and on one drifting along the run order: the two cases side by side,
    one process each."""
    with ProcessPoolExecutor(2, mp_context=get_context("fork")) as pool:
        runs = {name: pool.submit(_chunk, scope, TRUE_RATIO, 0.2, drift, 7, STUDIES, False)
                for name, drift in (("steady", 0.0), ("drifting", 0.10))}
        found = {name: run.result() for name, run in runs.items()}
    return {name: (float(np.mean([o == "reproduced" for o, _ in f])),
                   float(np.mean([o == "not reproduced" for o, _ in f])))
            for name, f in found.items()}


@pytest.mark.parametrize("case", ["steady", "drifting"])
def test_each_wrong_verdict_stays_at_2_5_percent_when_looking_after_every_batch(
        at_the_threshold, case):
    holds, fails = at_the_threshold[case]
    # measured (holds, fails): steady 2.7%, 2.0%; drifting 2.6%, 2.4% (limit 3.98%); with
    # 4000 studies 2.68%, 2.78% (s.e. 0.25%); the design on 10^6 null paths 2.49-2.53%
    assert holds <= BOUND and fails <= BOUND, (holds, fails)


def test_the_fixed_n_interval_read_at_every_look_errs_more(scope):
    holds, fails, _ = _studies(scope, TRUE_RATIO, 0.2, 0.0, seed=7, studies=400,
                               fixed_n=True)
    assert holds + fails > 2 * BOUND, (holds, fails)  # measured: 5.5% + 4.25%


def test_a_clear_effect_ends_conclusive_with_fewer_seeds_than_the_fixed_n_design(scope):
    # true ratio 1 against the threshold 1.3, per-seed log ratios with sd 0.131 (the mean
    # of two instances' log ratios of cells with 13.1% noise): an effect of 2 sd
    holds, fails, mean_seeds = _studies(scope, 1.0, 0.131, 0.0, seed=11)
    effect = math.log(TRUE_RATIO) / 0.131
    fixed = next(n for n in range(2, 100) if sp.nct.sf(
        sp.t.isf(ALPHA, n - 1), n - 1, effect * math.sqrt(n)) >= holds)
    # measured: power 0.943, 5.02 seeds on average against 6 for the fixed-n t test
    assert fails <= BOUND and holds >= 0.8, (holds, fails)
    assert mean_seeds < fixed, (mean_seeds, fixed, holds)


# -- the loop on a real grid ------------------------------------------------------------
CLAIMS = """
paper: "Probe claims"
family: probe
claims:
  - id: settled
    claim: "The probe value at scale 0.5 is below 0.5."
    check: {kind: metric, metric: probe_value, strategy: "probe[scale=0.5]", op: "<=",
            threshold: 0.5}
  - id: open
    claim: "The probe value at scale 0.9 is below 0.9."
    check: {kind: metric, metric: probe_value, strategy: "probe[scale=0.9]", op: "<=",
            threshold: 0.9}
"""
LOOP_GRID = """
name: loop
seeds: [0, 1, 2]
experiments:
  - problem: probe
    params: {size: 20}
    strategies:
      - probe: {scale: [0.5, 0.9], steps: 3, sleep_s: SLEEP}
"""


def _harness(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*HARNESS, *args], capture_output=True,
                          text=True, timeout=600, **kw)


def _setup(tmp_path: Path, sleep: float = 0.0) -> tuple[Path, Path]:
    claims = tmp_path / "claims"
    claims.mkdir()
    (claims / "probe.yaml").write_text(CLAIMS)
    grid = tmp_path / "loop.yaml"
    grid.write_text(LOOP_GRID.replace("SLEEP", str(sleep)))
    return grid, claims


def _loop_args(grid: Path, out: Path, claims: Path, *more: str) -> list[str]:
    return ["run", str(grid), "--out", str(out), "--until-conclusive", "--claims",
            str(claims), "--backend", "local", "--workers", "2", "--quiet", "--max-seeds", "9",
            *more]


def _seeds_of(out: Path, scale: float) -> list[int]:
    df = Store(out).cells()
    return sorted(df[df["s_scale"] == scale]["seed"])


@pytest.fixture(scope="module")
def looped(tmp_path_factory) -> tuple[Path, Path, Path, subprocess.CompletedProcess]:
    """One run until conclusive of the probe grid (each cell sleeping 0.3 s, so that a
    kill can land in a batch): its grid, claims, folder and the process."""
    root = tmp_path_factory.mktemp("loop")
    grid, claims = _setup(root, sleep=0.3)
    out = root / "out"
    return grid, claims, out, _harness(*_loop_args(grid, out, claims))


def test_a_settled_claim_buys_nothing_and_an_open_one_buys_until_it_closes(looped):
    _, claims, out, done = looped
    assert done.returncode == 0, done.stderr
    plan = json.loads((out / "conclusive.json").read_text())
    settled, open_ = (plan["claims"][f"probe.yaml:{c}:probe"] for c in ("settled", "open"))
    assert (settled["stopped"], settled["outcome"], settled["seeds"]) == (
        "conclusive", "reproduced", [0, 1, 2])
    assert _seeds_of(out, 0.5) == [0, 1, 2]  # no seed bought for it
    # seeds of scale 0.9: mean 0.58 (sd 0.19) against 0.9: settled at the look of 7 seeds
    assert open_["stopped"] == "conclusive" and open_["outcome"] == "reproduced"
    assert open_["seeds"] == list(range(7)) and _seeds_of(out, 0.9) == open_["seeds"]
    assert "until conclusive: 2 claims (2 conclusive)" in done.stdout
    status = _harness("status", str(out))
    assert "2 conclusive" in status.stdout and "reproduced" in status.stdout
    report = _harness("report", str(out), "--claims", str(claims))
    assert report.returncode == 0, report.stderr
    text = (out / "report.md").read_text()
    assert "This folder was run until conclusive" in text
    # the report judges the open claim at its stopping look: the same interval as the loop
    assert f"{len(open_['seeds'])} seeds" in text


def test_the_budget_stops_an_open_claim(tmp_path):
    grid, claims = _setup(tmp_path, sleep=1.0)
    out = tmp_path / "out"
    # the grid's own 6 cells take about 3 s on 2 workers; a batch cannot fit in 5 s more
    done = _harness(*_loop_args(grid, out, claims, "--budget", "5s"))
    assert done.returncode == 0, done.stderr
    plan = json.loads((out / "conclusive.json").read_text())
    assert plan["claims"]["probe.yaml:open:probe"]["stopped"] == "budget"
    assert plan["bought"] == [] and _seeds_of(out, 0.9) == [0, 1, 2]


def test_a_changed_design_is_refused_on_resume(looped):
    grid, claims, out, _ = looped
    again = _harness(*[a if a != "9" else "7" for a in _loop_args(grid, out, claims)])
    assert again.returncode == 2
    assert "--max-seeds 7 differs from the plan this folder was run with (9)" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_a_killed_run_resumes_the_same_plan(looped, tmp_path):
    grid, claims, whole, done = looped
    assert done.returncode == 0, done.stderr
    out = tmp_path / "killed"
    proc = subprocess.Popen([*HARNESS, *_loop_args(grid, out, claims)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    plan_file = out / "conclusive.json"  # written atomically: absent or whole
    wait_until("the first batch was bought", lambda: plan_file.exists() and bool(
        json.loads(plan_file.read_text()).get("bought")), proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    resumed = _harness(*_loop_args(grid, out, claims))
    assert resumed.returncode == 0, resumed.stderr
    mine, theirs = (json.loads((d / "conclusive.json").read_text()) for d in (out, whole))
    assert [c["cell_id"] for c in mine["bought"]] == [c["cell_id"] for c in theirs["bought"]]
    assert mine["claims"] == {k: {**v, "cpu_hours": mine["claims"][k]["cpu_hours"]}
                              for k, v in theirs["claims"].items()}
    cells = Store(out).cells()
    assert sorted(cells["cell_id"]) == sorted(Store(whole).cells()["cell_id"])
    # nothing finished ran twice: only the cells in flight at the kill (at most one per
    # worker) ran again, as attempt 2
    assert cells["cell_id"].is_unique and (cells["status"] == "ok").all()
    assert cells["attempt"].max() <= 2 and (cells["attempt"] == 2).sum() <= 2


def test_under_mpi_the_loop_runs_on_the_same_ranks(tmp_path):
    grid, claims = _setup(tmp_path)
    out = tmp_path / "out"
    bin_dir = Path(sys.executable).parent
    args = [a for a in _loop_args(grid, out, claims) if a not in ("--workers", "2")]
    args[args.index("local")] = "mpi"
    proc = subprocess.run([str(bin_dir / "mpiexec"), "-n", "3", str(bin_dir / "harness"),
                           *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads((out / "conclusive.json").read_text())
    assert plan["claims"]["probe.yaml:open:probe"]["seeds"] == list(range(7))
    cells = Store(out).cells()
    assert len(cells) == 6 + 4 and set(cells["backend"]) == {"mpi"}


def _judged(rows: pd.DataFrame, first: int = FIRST):
    plan = LookPlan("pocock", BATCH, MOST, None, "sim", claims={"c": ClaimState("c", first)})
    ctx = ReportContext(out=None, cells=rows, history=pd.DataFrame(), looks=plan)
    return judge_claim(ratio_check, CHECK, rows, ctx, "c")


def test_between_two_looks_a_claim_is_judged_on_the_seeds_of_the_earlier(scope):
    # another claim bought a fourth seed for the same cells: judging all four at the first
    # look's boundary would be a second judging there, which adds error
    base, _ = scope
    rows = base.assign(train_s=np.random.default_rng(3).lognormal(0, 0.2, len(base)))
    at_three, at_four = (_judged(rows[rows["seed"] < n]) for n in (3, 4))
    assert at_four[1].seeds == (0, 1, 2, 3) and at_four[0].estimate.n == 3
    assert at_four[0].estimate == at_three[0].estimate
    assert at_four[1].level == at_three[1].level > 0


def test_an_estimate_on_fewer_seeds_than_the_claim_is_judged_at_its_own_look(scope):
    # a failed timing cell leaves its seed out of the ratio: 4 of the 5 seeds have a value,
    # and the interval is the design's at 4 (the first look's boundary), not at 5
    base, fast = scope
    rows = base.assign(train_s=np.random.default_rng(4).lognormal(0, 0.2, len(base)))
    rows = rows[rows["seed"] < 5].copy()
    failed = rows.index[(rows["seed"] == 4) & fast[rows.index]]
    rows.loc[failed, "status"] = "error"
    m, judged = _judged(rows)
    assert judged.seeds == (0, 1, 2, 3, 4) and m.estimate.n == 4
    design = Design.at(LookPlan("pocock", BATCH, MOST, None, "x").looks(FIRST))
    expected = design.judge(m.estimate, "<", TRUE_RATIO).estimate
    assert (m.estimate.low, m.estimate.high) == pytest.approx((expected.low, expected.high))


def test_a_claim_with_no_data_is_judged_in_a_folder_run_until_conclusive(scope):
    # its check selects cells but estimates nothing, so no level is asked for before the
    # look is placed (the demo's learning-rate claim where no learning rate is swept)
    base, _ = scope
    plan = LookPlan("pocock", BATCH, MOST, None, "sim")
    ctx = ReportContext(out=None, cells=base, history=pd.DataFrame(), looks=plan)
    rows = base[base["seed"] < 4].assign(status="preempted")  # none is an outcome
    check = {"metric": "train_s", "strategy": "probe", "op": "<", "threshold": 1.0}
    m, judged = judge_claim(metric_check, check, rows, ctx, "new")
    assert m.outcome == "no data" and judged.seeds == (0, 1, 2, 3)
