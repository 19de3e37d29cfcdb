"""Paired statistics over seeds: an estimate with a 95% interval that is honest at the seed
counts people run (3–10).

Cells with the same seed share data, split and initial weights, so two strategies are
compared seed by seed. A ratio (of training times, of test errors) is summarised on the log
scale: the per-seed log-ratios get a Student t interval, and the estimate and interval are
exponentiated back (a geometric-mean ratio). A difference gets the t interval of the
per-seed differences, and a single metric the t interval of its values.

Why t and not a bootstrap: with n seeds the percentile bootstrap's interval is narrower
than the t interval by about sqrt((n − 1)/n) · 1.96 / t₀.₉₇₅,ₙ₋₁ (n = 3: 0.82 · 0.46), so
it misses the truth far too often. Measured on 600 simulated studies per seed count
(log-normal seed effects, 20% noise per strategy and seed, true ratio 1.3): the percentile
bootstrap (scipy.stats.bootstrap, 999 resamples) covered it in 75.5% of them at n = 3,
84.0% at n = 5 and 90.2% at n = 10; this t interval in 95.5%, 95.5% and 95.3%. It is exact
when the per-seed log-ratios (differences) are normal. ``tests/test_stats.py`` checks the
coverage through the report's own checks. The t interval comes from ``scipy.stats``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
MIN_SEEDS = 2  # fewer: no interval at all


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its 95% interval over ``n`` paired seeds (``low``/``high`` None
    when ``n`` < 2). ``kind``: ``ratio`` (geometric mean of per-seed ratios), ``difference``
    (mean of per-seed differences) or ``mean``."""

    value: float
    low: float | None
    high: float | None
    n: int
    kind: str = "ratio"
    unit: str = "seed"  # what n counts: seeds, or pairs when a seed gives several

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    def text(self, digits: int = 3) -> str:
        """``1.23 [1.10, 1.38], 5 seeds``, or a plain statement when there is no interval."""
        def f(x: float) -> str:
            return f"{x:.{digits}g}"
        seeds = f"{self.n} {self.unit}{'s' if self.n != 1 else ''}"
        if not self.has_interval:
            return f"{f(self.value)}, {seeds}: too few for an interval"
        return f"{f(self.value)} [{f(self.low)}, {f(self.high)}], {seeds}"

    def side(self, op: str, threshold: float) -> str:
        """``reproduced`` when the whole interval satisfies ``value op threshold``, ``not
        reproduced`` when the whole interval violates it, ``inconclusive`` otherwise (and
        when there is no interval)."""
        if not self.has_interval:
            return "inconclusive"
        low, high = self.low, self.high
        if op in ("<", "<="):
            holds = high < threshold if op == "<" else high <= threshold
            fails = low >= threshold if op == "<" else low > threshold
        elif op in (">", ">="):
            holds = low > threshold if op == ">" else low >= threshold
            fails = high <= threshold if op == ">" else high < threshold
        else:
            raise ValueError(f"op {op!r}; one of <, <=, >, >=")
        return "reproduced" if holds else "not reproduced" if fails else "inconclusive"


def _t_interval(x: np.ndarray) -> tuple[float, float | None, float | None]:
    mean = float(np.mean(x))
    if len(x) < MIN_SEEDS:
        return mean, None, None
    if float(np.ptp(x)) <= 1e-12 * max(1.0, float(np.max(np.abs(x)))):
        return mean, mean, mean  # identical up to round-off: the interval is the point
    ci = stats.ttest_1samp(x, 0.0).confidence_interval(LEVEL)
    return mean, float(ci.low), float(ci.high)


def mean_interval(values: Sequence[float]) -> Estimate | None:
    """The mean of ``values`` with its t interval; None when there are none."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None
    mean, low, high = _t_interval(x)
    return Estimate(mean, low, high, int(x.size), "mean")


def paired_difference(a: Sequence[float], b: Sequence[float]) -> Estimate | None:
    """Mean of the per-seed differences a − b with its t interval; None without a finite
    pair."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return None
    mean, low, high = _t_interval(d)
    return Estimate(mean, low, high, int(d.size), "difference")


def ratio_interval(ratios: Sequence[float]) -> Estimate | None:
    """Geometric mean of per-seed ratios with the exponentiated t interval of their logs
    (:func:`paired_ratio` of the ratios over ones)."""
    return paired_ratio(ratios, np.ones(len(ratios)))


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> Estimate | None:
    """Geometric mean of the per-seed ratios a / b with the exponentiated t interval of the
    log-ratios; None without a pair of positive values."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    if not ok.any():
        return None
    mean, low, high = _t_interval(np.log(a[ok]) - np.log(b[ok]))
    return Estimate(math.exp(mean), None if low is None else math.exp(low),
                    None if high is None else math.exp(high), int(ok.sum()), "ratio")
