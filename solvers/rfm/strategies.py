"""The random-feature strategies as harness plug-ins: thin wrappers around the library
functions of :mod:`harness.solvers.rfm` that choose their parameters and log what they did."""

from __future__ import annotations

import time
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch

from harness.errors import ParamError
from harness.params import Param
from harness.plugin import Fit, Metric, RunContext, Strategy

from .gcv import REGPARAM_RULES
from .hybrid import STOP_RULES, hybrid_lsqr
from .spectral import (
    SpectralFit,
    alpha_range,
    flow_time_range,
    gradient_flow_filter,
    half_mse,
    min_norm_filter,
    minimize_on_log_grid,
    tikhonov_filter,
)

SOLVE_S = Metric(float, "time spent in the solver, parameter selection included (s)", "s")
LAM = Metric(float, "weight decay α of (1/2n)‖WZ − C‖² + (α²/2)‖W‖² (hybrid: median over "
                    "classes of λ/√n)")


class MinNorm(Strategy):
    """Minimum-norm least squares (pseudo-inverse): the unregularized double-descent curve."""

    name = "min_norm"
    family = "rfm"
    metrics: ClassVar[dict[str, Metric]] = {"solve_s": SOLVE_S}

    def fit(self, task: Any, run: RunContext) -> Fit:
        t0 = time.perf_counter()
        fit = SpectralFit.of(task.Z, task.C)
        W = fit.weights(min_norm_filter(fit.s))
        return Fit(W, {"solve_s": time.perf_counter() - t0})


class _TunedFilter(Strategy):
    """A spectral filter with one parameter, fixed or tuned on held-out data."""

    family = "rfm"
    value_name: ClassVar[str]  # the fixed-value parameter and metric

    @abstractmethod
    def phi(self, fit: SpectralFit, value: float) -> torch.Tensor:
        """Filter factors for the parameter ``value``."""

    @abstractmethod
    def search_range(self, fit: SpectralFit) -> tuple[float, float]:
        """Interval of the parameter search."""

    @classmethod
    def check(cls, params: dict[str, Any]) -> None:
        if params["select"] == "fixed" and params[cls.value_name] is None:
            raise ParamError(cls.value_name, f"select: fixed needs a value for "
                                             f"{cls.value_name}")

    def _select(self, fit: SpectralFit, projected: torch.Tensor, targets: torch.Tensor,
                run: RunContext, split: str) -> float:
        def objective(value: float) -> float:
            return half_mse(fit.outputs(self.phi(fit, value), projected), targets)

        sel = minimize_on_log_grid(objective, *self.search_range(fit))
        for i, (value, score) in enumerate(zip(sel.grid, sel.scores, strict=True)):
            run.log(self.value_name, value, step=i, split="grid")
            run.log("select_mse", score, step=i, split=split)
        return sel.value

    def fit(self, task: Any, run: RunContext) -> Fit:
        t0 = time.perf_counter()
        select = self.params["select"]
        full = SpectralFit.of(task.Z, task.C)
        if select == "fixed":
            value = self.params[self.value_name]
        elif select == "oracle":  # the paper's baseline: tuned on the test set itself
            value = self._select(full, task.test_map(full.project), task.C_test, run, "test")
        else:  # a validation split carved from the training set, then a refit on all of it
            n = task.n
            n_val = min(n - 1, max(1, round(self.params["val_frac"] * n)))
            order = torch.as_tensor(np.random.default_rng([run.seed, 3]).permutation(n),
                                    device=task.Z.device)
            val, train = order[:n_val], order[n_val:]
            part = SpectralFit.of(task.Z[:, train], task.C[:, train])
            value = self._select(part, part.project(task.Z[:, val]), task.C[:, val], run, "val")
        W = full.weights(self.phi(full, value))
        return Fit(W, {self.value_name: value, "solve_s": time.perf_counter() - t0})


SELECT = Param(str, "oracle", "oracle (tuned on the test set, the paper's baseline), val "
               "(tuned on a validation split of the training set, then refit) or fixed",
               choices=("oracle", "val", "fixed"))
VAL_FRAC = Param(float, 0.2, "fraction of the training set held out when select: val",
                 low=0, high=1, low_open=True, high_open=True)


class Tikhonov(_TunedFilter):
    """Weight decay (Tikhonov), α fixed or tuned on test (oracle) or validation data."""

    name = "tikhonov"
    value_name = "lam"
    parameters: ClassVar[dict[str, Param]] = {
        "select": SELECT,
        "lam": Param(float, None, "fixed weight decay α (select: fixed)", low=0, nullable=True),
        "val_frac": VAL_FRAC,
    }
    metrics: ClassVar[dict[str, Metric]] = {"lam": LAM, "solve_s": SOLVE_S}

    def phi(self, fit: SpectralFit, value: float) -> torch.Tensor:
        return tikhonov_filter(fit.s, value, fit.n)

    def search_range(self, fit: SpectralFit) -> tuple[float, float]:
        return alpha_range(fit)


class GradientFlow(_TunedFilter):
    """Early stopping: gradient flow from zero, stopped at a fixed or tuned time t."""

    name = "gradient_flow"
    value_name = "t_flow"
    parameters: ClassVar[dict[str, Param]] = {
        "select": SELECT,
        "t_flow": Param(float, None, "fixed stopping time t (select: fixed), in the units of "
                                     "the authors' code (loss scaled by 1/(m·n))", low=0,
                        nullable=True),
        "val_frac": VAL_FRAC,
    }
    metrics: ClassVar[dict[str, Metric]] = {
        "t_flow": Metric(float, "gradient-flow stopping time t"), "solve_s": SOLVE_S}

    def phi(self, fit: SpectralFit, value: float) -> torch.Tensor:
        return gradient_flow_filter(fit.s, value, fit.m, fit.n)

    def search_range(self, fit: SpectralFit) -> tuple[float, float]:
        return flow_time_range(fit)


# The random-feature authors' configuration (EmoryMLIP/HybridRFM, driverHybrid.m): projected
# GCV for λ, no stopping rule, and the error recorded at the caps MaxIter = 2^4 … 2^10. The
# iterate after k steps does not depend on the cap, so one run to the largest cap gives
# every smaller cap's error along the way (logged per power of two k).
AUTHORS = ("gcv", "none", 1024)
AUTHORS_CAPS = tuple(2**j for j in range(4, 11))


class Hybrid(Strategy):
    """Hybrid LSQR: Golub–Kahan + Tikhonov on the projected problem, λ (and optionally the
    stopping iteration) chosen by GCV; uses no test or validation data."""

    name = "hybrid"
    family = "rfm"
    parameters: ClassVar[dict[str, Param]] = {
        "regparam": Param(str, "gcv_full", "GCV for λ of each projected problem: gcv, wgcv "
                          "(adaptive weight) or gcv_full (trace in the data space)",
                          choices=REGPARAM_RULES),
        "stop": Param(str, "none", "gcv (IR Tools' GCV stopping rule) or none (run to "
                      "max_iter)", choices=STOP_RULES),
        "max_iter": Param(int, None, "iteration cap (default min(m, n): the full Krylov "
                          "space)", low=1, nullable=True),
    }
    metrics: ClassVar[dict[str, Metric]] = {
        "lam": LAM,
        "n_iter": Metric(float, "hybrid: returned iterate, mean over classes"),
        "solve_s": SOLVE_S,
    }

    @classmethod
    def describe(cls, params: dict[str, Any]) -> str | None:
        rule = {"gcv_full": "GCV with the trace in the full data space (IR Tools' 'modgcv')",
                "gcv": "projected GCV (IR Tools' 'gcv')",
                "wgcv": "weighted projected GCV, adaptive ω (IR Tools' 'wgcv')"}
        lam = rule.get(params["regparam"], f"λ = {params['regparam']}") + " for λ"
        cap = params["max_iter"]
        if params["stop"] == "gcv":
            how = "IR Tools' GCV stopping rule" + (f" (cap {cap})" if cap else "") + (
                ", as the abstract words it; not used in the authors' code"
                if params["regparam"] == "gcv" else "; not used in the authors' code")
        else:
            how = f"no early stopping: {cap} iterations (fewer when min(m, n) is smaller)" if (
                cap) else "no early stopping: the full Krylov space, k = min(m, n)"
        authors = (" — the authors' configuration: their driver runs IR Tools with RegParam "
                   "'gcv', NoStop 'on' and records the error at the caps MaxIter = 2^4 … "
                   "2^10 that are ≤ m; judged here at k = min(m, n, 1024), their largest cap "
                   "where m is a power of two; the per-cap table gives every cap"
                   if (params["regparam"], params["stop"], cap) == AUTHORS else "")
        return f"{lam}; {how}{authors}"

    def fit(self, task: Any, run: RunContext) -> Fit:
        t0 = time.perf_counter()
        res = hybrid_lsqr(task.Z, task.C, regparam=self.params["regparam"],
                          stop=self.params["stop"], max_iter=self.params["max_iter"])
        solve_s = time.perf_counter() - t0
        with run.evaluating():  # the test error along the iterations, for the report
            last = int(res.n_iter.max())
            for k in sorted({*(2**j for j in range(last.bit_length())), last}):
                W_k = res.iterate(k)
                out = task.test_map(lambda Zc, W_k=W_k: W_k @ Zc)
                run.log("test_mse", half_mse(out, task.C_test), step=k, split="test")
        self._log_trace(res, task.n, run)
        alpha = np.median(res.lam) / np.sqrt(task.n)
        return Fit(res.W, {"lam": alpha, "n_iter": float(res.n_iter.mean()), "solve_s": solve_s})

    @staticmethod
    def _log_trace(res: Any, n: int, run: RunContext) -> None:
        """Per iteration k: median α, mean GCV stopping value, and the training error when
        every class has a projected solution at k."""
        steps = sorted({k for tr in res.trace for k in tr})
        for k in steps:
            at_k = [tr[k] for tr in res.trace if k in tr]
            run.log("lam", float(np.median([v[0] for v in at_k])) / np.sqrt(n), step=k,
                    split="train")
            run.log("gcv", float(np.mean([v[2] for v in at_k])), step=k, split="train")
            if len(at_k) == len(res.trace):
                run.log("train_mse", sum(v[1] for v in at_k) / (2 * n), step=k, split="train")
