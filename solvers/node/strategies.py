"""The neural-ODE strategies as harness plug-ins (family ``node``): Discretize-Optimize
(fixed-step RK4, backprop through the solver) and Optimize-Discretize (adaptive solver and
the continuous adjoint). Both run :func:`~harness.solvers.node.train.train_node`; they differ only
in the integrator."""

from __future__ import annotations

from typing import Any, ClassVar

from harness.errors import ParamError
from harness.params import Param
from harness.plugin import Diverged, Fit, Metric, RunContext, Strategy
from harness.vocabulary import PER_ITERATION

from .integrators import ADAPTIVE_METHODS, RK4_RULES, Adaptive, FixedStepRK4, Integrator
from .train import NodeSolution, train_node

DEFAULT_STEP = 0.05  # the paper's toy-CNF step when neither step_size nor n_steps is given

COMMON: dict[str, Param] = {
    "target_loss": Param(float, None, "stop the clock at the first iteration whose training "
                         "loss is at most this (time_to_target); training goes on",
                         nullable=True),
    "taylor": Param(bool, False, "run the Taylor gradient check (E0, E1 for h = 2^-1 … 2^-20) "
                    "at the initial weights"),
}
METRICS: dict[str, Metric] = {
    "train_loss": Metric(float, "training loss, mean of the last 10 iterations"),
    "nfe_fwd": Metric(float, "function evaluations per iteration in the forward solve (mean)"),
    "nfe_bwd": Metric(float, "function evaluations per iteration in the backward pass (mean; "
                             "0 for Disc-Opt, the adjoint solve for Opt-Disc)"),
    "iter_s": Metric(float, "wall time of one training iteration, median (s)", "s",
                     role=PER_ITERATION),
    "time_to_target": Metric(float, "training time until the loss first reached target_loss "
                                    "(s); null if never or no target", "s"),
    "iter_to_target": Metric(int, "iterations until the loss first reached target_loss"),
    "taylor_slope_e0": Metric(float, "fitted slope of log E0(h) vs log h (expected 1); "
                                     "null unless taylor"),
    "taylor_slope_e1": Metric(float, "fitted slope of log E1(h) vs log h (2 for an exact "
                                     "gradient); null unless taylor"),
}


class _NodeStrategy(Strategy):
    family = "node"
    metrics: ClassVar[dict[str, Metric]] = METRICS

    def integrator(self) -> Integrator:
        raise NotImplementedError

    def test_integrator(self) -> Integrator | None:
        """The integrator of the test metrics when it differs from the training one."""
        return None

    def fit(self, task: Any, run: RunContext) -> Fit:
        solve = self.integrator()
        try:
            stats = train_node(task, solve, run, target_loss=self.params["target_loss"],
                               taylor=self.params["taylor"], seed=run.seed)
        except FloatingPointError as err:
            raise Diverged(str(err)) from err
        return Fit(NodeSolution(task.model, solve, solve.finer(), test=self.test_integrator()),
                   stats.summary())


class DiscOpt(_NodeStrategy):
    """Discretize-Optimize: fixed-step RK4, gradients by backpropagation through every stage
    (the exact gradient of the discrete loss)."""

    name = "disc_opt"
    parameters: ClassVar[dict[str, Param]] = {
        "rule": Param(str, "classic", "RK4 weights: classic (1/6, 2/6, 2/6, 1/6) or 3/8 "
                      "(torchdiffeq's rk4, used by the paper's CNF code)", choices=RK4_RULES),
        "step_size": Param(float, None, "step h of one grid over the whole time span, the "
                           "last step clipped; outputs between grid points by cubic Hermite "
                           "interpolation (default 0.05 when n_steps is not given)", low=0,
                           low_open=True, nullable=True),
        "n_steps": Param(int, None, "number of equal steps over the time span (instead of "
                         "step_size)", low=1, nullable=True),
        "test_step_size": Param(float, None, "step h of the test metrics (null: the training "
                                "grid; the paper's tabular CNFs: trained at 0.25, tested at "
                                "0.1)", low=0, low_open=True, nullable=True),
        **COMMON,
    }
    smoke_params: ClassVar[dict[str, Any]] = {"n_steps": 4}

    @classmethod
    def check(cls, params: dict[str, Any]) -> None:
        if params["step_size"] is not None and params["n_steps"] is not None:
            raise ParamError("n_steps", "give step_size or n_steps, not both")

    @classmethod
    def integrator_text(cls, params: dict[str, Any]) -> str:
        """The integrator in words, e.g. ``RK4 3/8, h = 0.25`` (for reports)."""
        size = (f"{params['n_steps']} steps" if params["n_steps"] is not None
                else f"h = {params['step_size'] or DEFAULT_STEP:.4g}")
        return f"RK4 {params['rule']}, {size}"

    def integrator(self) -> FixedStepRK4:
        p = self.params
        if p["n_steps"] is not None:
            return FixedStepRK4(p["rule"], n_steps=p["n_steps"])
        return FixedStepRK4(p["rule"], step_size=p["step_size"] or DEFAULT_STEP)

    def test_integrator(self) -> FixedStepRK4 | None:
        h = self.params["test_step_size"]
        return None if h is None else FixedStepRK4(self.params["rule"], step_size=h)


class OptDisc(_NodeStrategy):
    """Optimize-Discretize: an adaptive solver (dopri5 by default) forward, gradients from
    the continuous adjoint solved backward at the same tolerances (torchdiffeq's
    odeint_adjoint)."""

    name = "opt_disc"
    parameters: ClassVar[dict[str, Param]] = {
        "method": Param(str, "dopri5", "adaptive method: torchdiffeq's, or tsit5 (Tsitouras "
                        "5(4), added to torchdiffeq by this package)", choices=ADAPTIVE_METHODS),
        "rtol": Param(float, 1e-5, "relative tolerance (forward and adjoint)", low=0,
                      low_open=True),
        "atol": Param(float, 1e-5, "absolute tolerance (forward and adjoint)", low=0,
                      low_open=True),
        **COMMON,
    }
    smoke_params: ClassVar[dict[str, Any]] = {"rtol": 1e-3, "atol": 1e-3}

    @classmethod
    def integrator_text(cls, params: dict[str, Any]) -> str:
        """The integrator in words, e.g. ``dopri5 + adjoint, rtol 1e-05, atol 1e-05``."""
        return (f"{params['method']} + adjoint, rtol {params['rtol']:g}, "
                f"atol {params['atol']:g}")

    def integrator(self) -> Adaptive:
        p = self.params
        return Adaptive(p["method"], rtol=p["rtol"], atol=p["atol"], adjoint=True)
