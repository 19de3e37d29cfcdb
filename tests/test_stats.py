"""Paired intervals have honest coverage at the seed counts people run, through the
report's own checks: simulated result folders with a known effect."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.report.checks import ratio_check
from harness.stats import Estimate, mean_interval, paired_difference, paired_ratio

PARAMS = '{"problem":{"size":1},"strategy":{}}'
STRATEGY = {"s_fail": "none", "s_sleep_s": 0.0, "s_spin_s": 0.0, "s_scale": 0.5}


def simulated_values(rng: np.random.Generator, seeds: int, ratio: float,
                     noise: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """Per-seed values of two variants: a per-seed effect shared by both (the seed's data),
    independent log-normal noise per cell, and true ratio ``ratio``."""
    seed_effect = rng.lognormal(0.0, 0.5, seeds)
    return (seed_effect * ratio * rng.lognormal(0.0, noise, seeds),
            seed_effect * rng.lognormal(0.0, noise, seeds))


def as_folder(a: np.ndarray, b: np.ndarray) -> pd.DataFrame:
    """The cells of a result folder holding ``a`` (probe, steps 5) and ``b`` (probe, steps
    3) as their ``train_s``, one cell per seed and variant."""
    return pd.DataFrame([
        {"problem": "probe", "params": PARAMS, "strategy": "probe", "status": "ok",
         "seed": s, "s_steps": steps, "train_s": v, **STRATEGY}
        for steps, values in ((5, a), (3, b)) for s, v in enumerate(values)])


CHECK = {"kind": "ratio", "metric": "train_s", "strategy": "probe[steps=5]",
         "baseline": "probe", "op": "<", "threshold": 1.0}


@pytest.mark.parametrize("seeds", [3, 5, 10])
def test_the_95_interval_covers_the_true_ratio_in_92_to_98_percent(seeds):
    rng = np.random.default_rng(seeds)
    truth, folders, covered = 1.3, 600, 0
    for i in range(folders):
        a, b = simulated_values(rng, seeds, truth)
        est = paired_ratio(a, b)
        if i < 5:  # the report's check computes the same interval from the folder's cells
            shown = ratio_check(CHECK, as_folder(a, b), None).estimate
            assert (shown.value, shown.low, shown.high, shown.n) == pytest.approx(
                (est.value, est.low, est.high, seeds))
        covered += est.low <= truth <= est.high
    assert 0.92 <= covered / folders <= 0.98, covered / folders


def test_a_clear_effect_is_reproduced_and_no_effect_is_inconclusive():
    rng = np.random.default_rng(0)
    clear = [ratio_check(CHECK, as_folder(*simulated_values(rng, 5, 0.5, noise=0.1)),
                         None).outcome for _ in range(40)]
    assert clear == ["reproduced"] * 40
    none = [ratio_check(CHECK, as_folder(*simulated_values(rng, 5, 1.0)), None).outcome
            for _ in range(80)]
    # a true ratio of 1 sits on the threshold: the interval straddles it ~95% of the time
    assert none.count("inconclusive") >= 72, none


def test_intervals_against_hand_computed_t_intervals():
    from scipy.stats import t

    a, b = np.array([2.0, 2.2, 1.9, 2.4]), np.array([1.0, 1.0, 1.1, 1.2])
    d = np.log(a / b)
    half = t.ppf(0.975, 3) * d.std(ddof=1) / 2
    r = paired_ratio(a, b)
    assert (r.value, r.low, r.high) == pytest.approx(
        (np.exp(d.mean()), np.exp(d.mean() - half), np.exp(d.mean() + half)))
    diff = paired_difference(a, b)
    half = t.ppf(0.975, 3) * (a - b).std(ddof=1) / 2
    assert (diff.low, diff.high) == pytest.approx(((a - b).mean() - half, (a - b).mean() + half))
    assert mean_interval([3.0]).text() == "3, 1 seed: too few for an interval"
    assert mean_interval([3.0]).side("<", 5) == "inconclusive"
    assert paired_ratio([1.0, -1.0], [1.0, 1.0]).n == 1  # non-positive values are left out
    assert paired_ratio([], []) is None
    e = Estimate(1.2, 1.1, 1.3, 5)
    assert e.side("<=", 1.3) == "reproduced" and e.side("<", 1.3) == "inconclusive"
    assert e.side(">", 1.3) == "not reproduced" and e.side(">=", 1.0) == "reproduced"
    assert e.text() == "1.2 [1.1, 1.3], 5 seeds"
