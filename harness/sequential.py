"""A group-sequential design: judge a claim after every batch of seeds, and stop when it is
settled, with each wrong verdict still at most 2.5% of studies.

Looking after every batch and stopping as soon as the fixed-n 95% t interval clears the
threshold makes each wrong verdict about 10% likely instead of 2.5% (measured: 20000
simulated studies, looks every 2 seeds up to 16). The remedy measured best at 2–20 seeds
with an unknown spread is a Lan-DeMets alpha-spending design (Lan & DeMets 1983): each side
of the threshold may spend ``ALPHA`` in all, a spending function ``f(τ)`` says how much of
it is spent by the information fraction ``τ = min(n / N, 1)``, with ``N`` the most seeds
the run will buy, fixed when it is planned. Anytime-valid confidence sequences (t mixture,
savvi, confseq) were 3–5 times more conservative here (wrong verdicts < 1%, fewer
conclusive claims), or invalid with a plug-in spread (12%).

Why boundaries on the t scale by Monte Carlo: the classic boundaries are for a z statistic
with a known variance; carried to the t scale by keeping each look's nominal p-value they
still err in 2.7–3.1% of studies at these seed counts. The one-sample t process under the
null is pivotal (its law depends on neither the mean nor the spread), so its boundaries can
be calibrated once on simulated standard-normal paths: at look ``k`` among the paths that
have not crossed an earlier boundary, ``c_k`` is the ``⌈2·inc_k·P⌉``-th largest ``|T_k|``
of ``P`` paths, ``inc_k`` the spending increment of each side. The first look needs no
simulation (``c_1 = t.isf(inc_1, n_1 − 1)``, exact), and where a look would stop fewer than
400 paths the marginal quantile ``t.isf(inc_k, n_k − 1)`` is used: it spends at most
``inc_k`` whatever happened before, so it is conservative. Measured: 2.4–2.6% per side.

The verdict at a look is read off the repeated confidence interval ``x̄ ± c_k·s/√n`` on
the estimate's scale (log ratios for a ratio, mapped back as :mod:`harness.stats` does):
unlike the fixed-n interval it covers the truth at every look at once with 95%.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sp

from .stats import _SCALES, ALPHA, MIN_SEEDS, Estimate

PATHS = 400_000  # null paths the boundaries are calibrated on (the 0.1% tail: ~400 each)
SEED = 20240924  # fixed, so the same design gives the same numbers on every machine
_CHUNK = 50_000  # paths simulated at a time (memory: chunk × N doubles)
_MIN_TAIL = 400  # fewer paths to stop at a look: the marginal t quantile instead


def _pocock(tau: np.ndarray, alpha: float) -> np.ndarray:
    return alpha * np.log1p((math.e - 1) * tau)


def _hsd(tau: np.ndarray, alpha: float, gamma: float = -2.0) -> np.ndarray:
    return alpha * (1 - np.exp(-gamma * tau)) / (1 - math.exp(-gamma))


def _obrien_fleming(tau: np.ndarray, alpha: float) -> np.ndarray:
    with np.errstate(divide="ignore"):  # τ = 0 spends nothing
        return 2 * sp.norm.sf(sp.norm.isf(alpha / 2) / np.sqrt(tau))


# Spending functions per side, f(0) = 0, f(1) = alpha. Pocock-type spends early (settles a
# clear claim with the fewest seeds, measured); O'Brien-Fleming-type keeps almost all of it
# for the last look; Hwang-Shih-DeCani with γ = −2 lies between.
SPENDING: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "pocock": _pocock, "hsd-2": _hsd, "obrien-fleming": _obrien_fleming}


def schedule(first: int, batch: int, most: int) -> tuple[int, ...]:
    """The look sizes ``first, first + batch, …`` up to ``most``, ending at ``most``."""
    if not MIN_SEEDS <= first <= most or batch < 1:
        raise ValueError(f"looks from {first} by {batch} up to {most}: need 2 ≤ first ≤ most")
    sizes = list(range(first, most + 1, batch))
    return tuple(sizes if sizes[-1] == most else [*sizes, most])


def _null_t(looks: Sequence[int], paths: int, seed: int) -> np.ndarray:
    """``|T|`` of the running mean at each look size on ``paths`` standard-normal paths
    (float32: 4 bytes a value, ample for quantiles at 1e-3)."""
    n = np.asarray(looks)
    rng = np.random.default_rng(seed)
    out = np.empty((paths, n.size), dtype=np.float32)
    for start in range(0, paths, _CHUNK):
        x = rng.standard_normal((min(_CHUNK, paths - start), int(n[-1])))
        s1, s2 = np.cumsum(x, axis=1)[:, n - 1], np.cumsum(x * x, axis=1)[:, n - 1]
        mean = s1 / n
        var = np.maximum((s2 - n * mean ** 2) / (n - 1), 1e-300)
        out[start:start + len(x)] = np.abs(mean / np.sqrt(var / n))
    return out


def boundaries(looks: Sequence[int], spending: str = "pocock", alpha: float = ALPHA,
               paths: int = PATHS, seed: int = SEED) -> tuple[float, ...]:
    """The ``|t|`` boundary of each look, each side spending ``alpha`` in all (see the
    module's docstring); deterministic for the same arguments."""
    n = np.asarray(looks)
    if n.size == 0 or n[0] < MIN_SEEDS or np.any(np.diff(n) <= 0):
        raise ValueError(f"looks {list(looks)}: increasing sizes of at least {MIN_SEEDS}")
    cum = SPENDING[spending](np.minimum(n / n[-1], 1.0), alpha)
    inc = np.diff(np.concatenate([[0.0], cum]))
    t = _null_t(n, paths, seed) if n.size > 1 else None
    alive = np.ones(paths, dtype=bool)
    bounds = []
    for k, size in enumerate(n):
        stop = math.ceil(2 * inc[k] * paths)  # paths to stop at this look, both sides
        if k == 0 or stop < _MIN_TAIL:
            c = float(sp.t.isf(inc[k], size - 1)) if inc[k] > 0 else math.inf
        else:
            left = t[alive, k]
            c = float(np.partition(left, left.size - stop)[left.size - stop]) \
                if stop <= left.size else 0.0
        bounds.append(c)
        if t is not None:
            alive &= t[:, k] < c  # crossed here: it stopped, and spends nothing later
    return tuple(bounds)


@dataclass(frozen=True)
class Look:
    """A verdict at one look: ``verdict`` as :meth:`Estimate.side` says it (``reproduced``,
    ``not reproduced``, ``inconclusive``); ``estimate`` carries the repeated confidence
    interval (not the fixed-n one) and the sample; ``look`` the index of the scheduled look
    (None below the first), ``bound`` its ``|t|`` boundary."""

    verdict: str
    estimate: Estimate | None
    look: int | None
    bound: float | None

    @property
    def conclusive(self) -> bool:
        return self.verdict != "inconclusive"


@dataclass(frozen=True)
class Design:
    """A group-sequential plan: looks at ``looks`` seeds (the last is the most seeds, N),
    each side of a threshold spending ``alpha`` by ``spending``, with the ``|t|`` boundary
    of each look. Saved with a run (:data:`KNOWN`, in its plan) so a resumed run judges
    with the very same boundaries."""

    spending: str
    alpha: float
    looks: tuple[int, ...]
    bounds: tuple[float, ...]
    paths: int = PATHS
    seed: int = SEED

    @classmethod
    def plan(cls, first: int, batch: int, most: int, spending: str = "pocock",
             alpha: float = ALPHA, paths: int = PATHS, seed: int = SEED) -> Design:
        """Looks at ``first, first + batch, …, most`` seeds, boundaries computed."""
        if spending not in SPENDING:
            raise ValueError(f"spending {spending!r}; one of {', '.join(SPENDING)}")
        looks = schedule(first, batch, most)
        return cls(spending, alpha, looks, boundaries(looks, spending, alpha, paths, seed),
                   paths, seed)

    @classmethod
    def at(cls, looks: tuple[int, ...], spending: str = "pocock", alpha: float = ALPHA
           ) -> Design:
        """The design with these ``looks``, each side spending ``alpha``; computed once per
        process (0.2–0.3 s each), as a claim of several items asks for one per Holm step,
        or taken from :data:`KNOWN` (the boundaries a run's plan saved)."""
        if spending not in SPENDING:
            raise ValueError(f"spending {spending!r}; one of {', '.join(SPENDING)}")
        key = design_key(tuple(looks), spending, alpha)
        if key not in KNOWN:
            KNOWN[key] = boundaries(looks, spending, alpha)
        return cls(spending, alpha, tuple(looks), tuple(KNOWN[key]))

    @property
    def most(self) -> int:
        return self.looks[-1]

    def nominal(self, n: int) -> float:
        """The one-sided level of a t test on ``n`` seeds at the look they are judged at
        (:meth:`look_at`): the tail of ``|t| > bound`` at ``n − 1`` degrees of freedom, so
        that a fixed-n test at this level decides exactly as :meth:`judge` does. 0 below
        the first look (nothing is decided there)."""
        k = self.look_at(n)
        if k is None or n < MIN_SEEDS:
            return 0.0
        return float(sp.t.sf(self.bounds[k], n - 1))

    def look_at(self, n: int) -> int | None:
        """The index of the look ``n`` seeds are judged at: the largest scheduled size ≤ n
        (None below the first). Why not recompute the boundary at a realized ``n`` between
        two looks: the boundaries already used would move, so a resumed run could disagree
        with what it decided; the earlier look's boundary is at least as wide as the next
        one's and ``|T|`` at more seeds has lighter tails, so it errs on the safe side. Each
        index is to be judged once: judge again only when this index grows (a batch that
        adds no values, or too few to reach the next size, is no new look). A look skipped
        by a larger batch spends nothing, which only lowers the error."""
        k = int(np.searchsorted(self.looks, n, side="right")) - 1
        return None if k < 0 else k

    def judge(self, data: Sequence[float] | Estimate, op: str, threshold: float,
              kind: str = "mean") -> Look:
        """The verdict on ``value op threshold`` at the look for the sample's size:
        ``data`` is the per-seed sample on the scale of ``kind`` (log ratios for a ratio or
        a reduction, as :func:`harness.stats.estimate` takes it), or an :class:`Estimate`,
        whose sample, kind, accounting and fill bias are kept. A filled value never decides
        in the direction it could flatter (as :meth:`Estimate.p_values`)."""
        est = data if isinstance(data, Estimate) else None
        x = np.asarray(est.sample if est else data, dtype=float)
        kind = est.kind if est else kind
        k = self.look_at(x.size)
        if x.size == 0:
            return Look("inconclusive", None, k, None)
        back = _SCALES[kind][1]
        mean = float(np.mean(x))
        low = high = None
        if k is not None:
            spread = float(np.std(x, ddof=1))
            if float(np.ptp(x)) <= 1e-12 * max(1.0, float(np.max(np.abs(x)))):
                spread = 0.0  # identical up to round-off: the interval is the point
            half = self.bounds[k] * spread / math.sqrt(x.size)
            low, high = sorted((back(mean - half), back(mean + half)))
        bias = est.bias if est else 0
        out = Estimate(back(mean), low, high, int(x.size), kind, sample=tuple(map(float, x)),
                       excluded=est.excluded if est else (),
                       counted=est.counted if est else (), bias=bias)
        verdict = out.side(op, threshold)
        if verdict != "inconclusive" and bias != 0:
            # the direction on the sample's scale the verdict asserts; a reduction runs the
            # other way; a fill that may push the sample that way cannot assert it
            less = (op in ("<", "<=")) != (kind == "reduction")
            up = less != (verdict == "reproduced")  # asserts "higher on the sample scale"
            if bias is None or (bias == 1) != up:
                verdict = "inconclusive"
        return Look(verdict, out, k, None if k is None else self.bounds[k])

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Design:
        d = json.loads(text)
        return cls(d["spending"], float(d["alpha"]), tuple(map(int, d["looks"])),
                   tuple(map(float, d["bounds"])), int(d["paths"]), int(d["seed"]))


# Every design's boundaries computed or loaded in this process, by :func:`design_key`: a run
# until conclusive saves them in its plan, so a resumed run (or its report, on another
# machine or numpy version, whose random streams may differ) judges with the very same.
KNOWN: dict[str, tuple[float, ...]] = {}


def design_key(looks: tuple[int, ...], spending: str, alpha: float) -> str:
    return f"{spending}|{','.join(map(str, looks))}|{alpha!r}"


def nominal_levels(looks: tuple[int, ...], spending: str, n: int
                   ) -> Callable[[float, int | None], float]:
    """``(alpha, size) → level``: the level at which a sample of ``size`` (default ``n``,
    the claim's seeds; never more) is judged, for each error budget, under designs with
    ``looks`` and ``spending`` (for :func:`harness.stats.judged_at`). A sample smaller than
    the claim's seeds (a failed timing left out, a seed without a partner) is judged at the
    look it reaches itself, with its own degrees of freedom, as :meth:`Design.judge`
    does."""
    def nominal(alpha: float, size: int | None = None) -> float:
        return Design.at(tuple(looks), spending, alpha).nominal(n if size is None
                                                                else min(size, n))
    return nominal
