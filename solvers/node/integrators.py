"""ODE integrators for neural ODEs, with function evaluations counted.

Both kinds share one call signature, ``solver(func, y0, t) -> ys`` with ``ys[i]`` the state
at ``t[i]`` (as torchdiffeq's ``odeint``), and a counter ``solver.nfe`` of calls to
``func``:

- :class:`FixedStepRK4` — Disc-Opt: classic or 3/8-rule RK4 on a fixed grid, every stage on
  the autograd tape, so ``backward()`` gives the exact gradient of the discrete loss and
  calls ``func`` zero times.
- :class:`Adaptive` — Opt-Disc: an adaptive torchdiffeq method; with ``adjoint=True`` the
  gradient comes from the continuous adjoint (``odeint_adjoint``), whose backward solve
  calls ``func`` again (counted as well).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import pairwise

import torch
from torch import nn

from .tsit5 import register_tsit5

RK4_RULES = ("classic", "3/8")
ADAPTIVE_METHODS = ("dopri5", "tsit5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun")
_GRID_SLACK = 1e-9  # a last step shorter than this fraction of h is dropped, not taken

Func = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class Integrator:
    """Base: the evaluation counter and the common interface."""

    nfe: int = 0

    def reset(self) -> None:
        """Set the function-evaluation counter to zero."""
        self.nfe = 0

    def __call__(self, func: Func, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def finer(self) -> Integrator:
        """The same kind of solver, more accurate (for re-discretization checks)."""
        raise NotImplementedError

    def describe(self) -> str:
        """A short label, e.g. ``rk4(3/8, h=0.25)``."""
        raise NotImplementedError


def rk4_step(func: Func, t: torch.Tensor, y: torch.Tensor, h: torch.Tensor,
             rule: str = "classic", with_slope: bool = False):
    """One RK4 step from (t, y) with step h: the classic rule (1/6, 2/6, 2/6, 1/6) or
    Kutta's 3/8 rule (1/8, 3/8, 3/8, 1/8; torchdiffeq's ``rk4``). With ``with_slope`` the
    pair (new state, f(t, y)) is returned."""
    k1 = func(t, y)
    if rule == "classic":
        k2 = func(t + h / 2, y + h / 2 * k1)
        k3 = func(t + h / 2, y + h / 2 * k2)
        k4 = func(t + h, y + h * k3)
        y_new = y + h / 6 * (k1 + 2 * (k2 + k3) + k4)
    else:
        k2 = func(t + h / 3, y + h / 3 * k1)
        k3 = func(t + 2 * h / 3, y + h * (k2 - k1 / 3))
        k4 = func(t + h, y + h * (k1 - k2 + k3))
        y_new = y + h / 8 * (k1 + 3 * (k2 + k3) + k4)
    return (y_new, k1) if with_slope else y_new


def hermite(y0: torch.Tensor, f0: torch.Tensor, y1: torch.Tensor, f1: torch.Tensor,
            dt: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """The cubic Hermite interpolant through (0, y0, f0) and (h, y1, f1), evaluated at dt."""
    s = dt / h
    s2, s3 = s * s, s * s * s
    return ((2 * s3 - 3 * s2 + 1) * y0 + (s3 - 2 * s2 + s) * h * f0
            + (-2 * s3 + 3 * s2) * y1 + (s3 - s2) * h * f1)


class FixedStepRK4(Integrator):
    """RK4 on one fixed grid over the whole span: steps of ``step_size`` from t[0] (the last
    one clipped to end at t[-1], as torchdiffeq's fixed-grid solvers do), or ``n_steps``
    equal steps. The grid does not restart at output times, so a step that does not divide
    the output intervals costs nothing extra: an output time between two grid points is
    read off the cubic Hermite interpolant of the states and derivatives f at those points
    (4th-order accurate, like the steps; the derivative at a grid point is the first stage
    of the step taken from it, so no extra evaluation is needed except when an output lies
    strictly inside the last step). An output within 1e-9·h of a grid point takes that
    point's state.

    Grid points are built from the tensor ``t``, so a trainable end time receives its
    gradient through the last step."""

    def __init__(self, rule: str = "classic", step_size: float | None = None,
                 n_steps: int | None = None):
        if rule not in RK4_RULES:
            raise ValueError(f"rule must be one of {RK4_RULES}, not {rule!r}")
        if (step_size is None) == (n_steps is None):
            raise ValueError("give exactly one of step_size and n_steps")
        self.rule, self.step_size, self.n_steps = rule, step_size, n_steps

    def grid(self, a: torch.Tensor, b: torch.Tensor) -> list[torch.Tensor]:
        """The grid points from a to b (tensors; b is the last point)."""
        length = float((b - a).detach())
        if self.step_size is not None:
            h = math.copysign(self.step_size, length)
            n = max(1, math.ceil(abs(length) / self.step_size - _GRID_SLACK))
            return [a + k * h for k in range(n)] + [b]
        return [a + (b - a) * (k / self.n_steps) for k in range(self.n_steps)] + [b]

    def __call__(self, func: Func, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        grid = self.grid(t[0], t[-1])
        times = [float(g.detach()) for g in grid]
        sign = 1.0 if times[-1] >= times[0] else -1.0
        states, slopes = [y0], []  # slopes[k] = f(t_k, y_k), the first stage of step k
        for ta, tb in pairwise(grid):
            y, k1 = rk4_step(func, ta, states[-1], tb - ta, self.rule, with_slope=True)
            self.nfe += 4
            states.append(y)
            slopes.append(k1)
        ys, j = [], 0
        for ti in t:
            tau = float(ti.detach())
            while j < len(times) - 2 and sign * (tau - times[j + 1]) >= 0:
                j += 1  # [times[j], times[j+1]] holds tau (outputs are monotone)
            h = times[j + 1] - times[j]
            s = (tau - times[j]) / h
            if abs(s) <= _GRID_SLACK:  # t[0] itself, or a grid point
                ys.append(states[j])
            elif abs(s - 1) <= _GRID_SLACK:
                ys.append(states[j + 1])
            else:
                if j + 1 == len(slopes):  # inside the last step: f at its end is needed
                    slopes.append(func(grid[j + 1], states[j + 1]))
                    self.nfe += 1
                ys.append(hermite(states[j], slopes[j], states[j + 1], slopes[j + 1],
                                  ti - grid[j], grid[j + 1] - grid[j]))
        return torch.stack(ys)

    def finer(self) -> FixedStepRK4:
        if self.step_size is not None:
            return FixedStepRK4(self.rule, step_size=self.step_size / 4)
        return FixedStepRK4(self.rule, n_steps=self.n_steps * 4)

    def describe(self) -> str:
        size = f"h={self.step_size:.4g}" if self.step_size is not None else f"n={self.n_steps}"
        return f"rk4({self.rule}, {size})"


class _Counted(nn.Module):
    """Wraps ``func`` so every call increments the owner's counter. A module, so that
    ``odeint_adjoint`` finds the parameters of ``func`` through it."""

    def __init__(self, func: Func, owner: Integrator):
        super().__init__()
        self.func, self.owner = func, [owner]  # a list: not registered as a submodule

    def forward(self, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        self.owner[0].nfe += 1
        return self.func(t, y)


class Adaptive(Integrator):
    """An adaptive torchdiffeq method (``dopri5`` …) at ``rtol``/``atol``; with
    ``adjoint=True`` gradients come from the continuous adjoint (Opt-Disc)."""

    def __init__(self, method: str = "dopri5", rtol: float = 1e-5, atol: float = 1e-5,
                 adjoint: bool = False):
        if method not in ADAPTIVE_METHODS:
            raise ValueError(f"method must be one of {ADAPTIVE_METHODS}, not {method!r}")
        self.method, self.rtol, self.atol, self.adjoint = method, rtol, atol, adjoint
        if method == "tsit5":
            register_tsit5()

    def __call__(self, func: Func, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        from torchdiffeq import odeint, odeint_adjoint

        counted = _Counted(func, self)
        try:
            if self.adjoint and torch.is_grad_enabled():
                params = tuple(p for p in counted.parameters() if p.requires_grad)
                return odeint_adjoint(counted, y0, t, rtol=self.rtol, atol=self.atol,
                                      method=self.method, adjoint_params=params)
            return odeint(counted, y0, t, rtol=self.rtol, atol=self.atol, method=self.method)
        except AssertionError as err:  # torchdiffeq asserts when the step size underflows
            if "underflow" not in str(err):
                raise
            raise FloatingPointError(f"{self.describe()}: {err} (the solution blew up)") from err

    def finer(self) -> Adaptive:
        return Adaptive(self.method, self.rtol / 100, self.atol / 100, self.adjoint)

    def describe(self) -> str:
        kind = "adjoint" if self.adjoint else "backprop"
        return f"{self.method}({kind}, rtol={self.rtol:g}, atol={self.atol:g})"


def unless_blown_up(evaluate: Callable[[], float]) -> float | None:
    """``evaluate()``, or None when its solve blew up (a non-finite value, or an adaptive
    step size that underflowed): for re-discretization checks, which must not fail a cell
    whose training went fine."""
    try:
        value = evaluate()
    except FloatingPointError:
        return None
    return value if math.isfinite(value) else None


def reference_solver(tol: float = 1e-8) -> Adaptive:
    """dopri5 at rtol = atol = ``tol`` without the adjoint: the re-discretization check."""
    return Adaptive("dopri5", rtol=tol, atol=tol, adjoint=False)
