"""harness.sequential: simulated studies judged through Design.judge, looking after every
batch of 2 seeds from 3 to 15 and stopping at the first conclusive look.

With the truth exactly at the threshold (normal seeds, unknown sd), each wrong verdict must
stay within 2.5% + 3 Monte Carlo standard errors of STUDIES studies (4000: 2.5% + 0.74% =
3.24%); the fixed-n 95% t interval read at every look must exceed 5% (the check can fail).
With a clear effect (1 sd) the design must conclude with fewer seeds on average than the
fixed-n t test of equal power.
"""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as sp

from harness.sequential import SPENDING, Design, boundaries, schedule
from harness.stats import ALPHA, estimate, mean_interval

STUDIES = 4000
FIRST, BATCH, MOST = 3, 2, 15
BOUND = ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / STUDIES)  # 3.24%


@pytest.fixture(scope="module")
def design() -> Design:
    return Design.plan(FIRST, BATCH, MOST)


def _run(judge, mu: float, seed: int) -> tuple[float, float, float]:
    """(share reproduced, share not reproduced, mean seeds at stop) of STUDIES studies of
    ``mean > 0`` with seeds N(mu, 1), each stopped at its first conclusive look."""
    x = np.random.default_rng(seed).normal(mu, 1.0, (STUDIES, MOST))
    verdicts, used = [], []
    for study in x:
        for n in schedule(FIRST, BATCH, MOST):
            verdict = judge(study[:n])
            if verdict != "inconclusive" or n == MOST:
                break
        verdicts.append(verdict)
        used.append(n)
    verdicts = np.array(verdicts)
    return (float(np.mean(verdicts == "reproduced")),
            float(np.mean(verdicts == "not reproduced")), float(np.mean(used)))


@pytest.mark.parametrize("spending", ["pocock", "hsd-2", "obrien-fleming"])
def test_each_wrong_verdict_stays_at_2_5_percent_under_optional_stopping(design, spending):
    plan = design if spending == design.spending else Design.plan(FIRST, BATCH, MOST, spending)
    holds, fails, _ = _run(lambda x: plan.judge(x, ">", 0.0).verdict, 0.0, seed=1)
    # measured (holds, fails): Pocock 1.93%, 2.55%; HSD 1.95%, 2.53%; OBF 2.15%, 2.63%
    # (limit 3.24%)
    assert holds <= BOUND and fails <= BOUND, (holds, fails)


def test_the_fixed_n_interval_at_every_look_errs_far_more_often():
    holds, fails, _ = _run(lambda x: mean_interval(x).side(">", 0.0), 0.0, seed=1)
    assert holds > 0.05 and fails > 0.05, (holds, fails)  # measured: 7.7% and 9.1%


def test_a_ratio_at_its_threshold_is_judged_on_the_log_scale(design):
    # per-seed log ratios with geometric mean exactly 1.2, judged against 1.2
    logs = np.random.default_rng(3).normal(math.log(1.2), 0.3, (STUDIES, MOST))
    wrong = np.mean([design.judge(estimate(x, "ratio"), "<", 1.2).conclusive for x in logs])
    # measured: 1.2% conclusive either way (one look at 15 seeds)
    assert wrong <= 2 * BOUND, wrong
    look = design.judge(estimate(logs[0], "ratio"), "<", 1.2)
    low, high = look.estimate.low, look.estimate.high
    x = logs[0]
    half = design.bounds[-1] * np.std(x, ddof=1) / math.sqrt(x.size)
    assert (low, high) == pytest.approx((math.exp(x.mean() - half), math.exp(x.mean() + half)))


def test_a_clear_effect_concludes_with_fewer_seeds_than_the_fixed_n_design(design):
    holds, _, seeds = _run(lambda x: design.judge(x, ">", 0.0).verdict, 1.0, seed=2)
    # the fixed-n one-sided t test at 2.5% with at least the same power (noncentral t)
    fixed = next(n for n in range(2, 100) if sp.nct.sf(sp.t.isf(ALPHA, n - 1), n - 1,
                                                        math.sqrt(n)) >= holds)
    # measured: power 86.4%, 10.06 seeds on average against 12 for the fixed-n design
    assert seeds < fixed, (holds, seeds, fixed)


def test_boundaries_are_deterministic_and_round_trip_through_json(design):
    again = Design.plan(FIRST, BATCH, MOST)
    assert again == design
    assert Design.from_json(design.to_json()) == design
    assert json.loads(design.to_json())["looks"] == [3, 5, 7, 9, 11, 13, 15]
    # the first look is exact: the t quantile of the first spending increment
    inc = SPENDING["pocock"](np.array([FIRST / MOST]), ALPHA)[0]
    assert inc == pytest.approx(ALPHA * math.log(1 + (math.e - 1) * FIRST / MOST), rel=1e-12)
    assert design.bounds[0] == sp.t.isf(inc, FIRST - 1)
    # wider than the fixed-n interval at every look, and falling with the seeds
    assert all(c > sp.t.isf(ALPHA, n - 1) for c, n in
               zip(design.bounds, design.looks, strict=True))
    assert list(design.bounds) == sorted(design.bounds, reverse=True)


def test_spending_functions_order_the_first_boundaries():
    looks = schedule(FIRST, BATCH, MOST)
    poc, hsd, obf = (boundaries(looks, s, paths=100_000)
                     for s in ("pocock", "hsd-2", "obrien-fleming"))
    assert poc[0] < hsd[0] < obf[0] and poc[-1] > hsd[-1] > obf[-1]


def test_a_realized_size_between_looks_uses_the_earlier_look(design):
    assert [design.look_at(n) for n in (2, 3, 4, 5, 14, 15, 20)] == [None, 0, 0, 1, 5, 6, 6]
    assert design.judge([1.0, 2.0], ">", 0.0).verdict == "inconclusive"
    look = design.judge([1.0, 1.1, 0.9, 1.2], ">", 0.0)
    assert look.look == 0 and look.bound == design.bounds[0]


def test_a_filled_value_never_decides_the_way_it_could_flatter(design):
    x = np.full(MOST, 1.0) + np.random.default_rng(4).normal(0, 0.01, MOST)
    est = estimate(x, "mean")
    assert design.judge(est, ">", 0.0).verdict == "reproduced"
    up = replace(est, bias=1)  # the truth may be higher still
    assert design.judge(up, ">", 0.0).verdict == "reproduced"
    down = replace(est, bias=-1)
    assert design.judge(down, ">", 0.0).verdict == "inconclusive"
