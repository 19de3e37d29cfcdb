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
             rule: str = "classic") -> torch.Tensor:
    """One RK4 step from (t, y) with step h: the classic rule (1/6, 2/6, 2/6, 1/6) or
    Kutta's 3/8 rule (1/8, 3/8, 3/8, 1/8; torchdiffeq's ``rk4``)."""
    k1 = func(t, y)
    if rule == "classic":
        k2 = func(t + h / 2, y + h / 2 * k1)
        k3 = func(t + h / 2, y + h / 2 * k2)
        k4 = func(t + h, y + h * k3)
        return y + h / 6 * (k1 + 2 * (k2 + k3) + k4)
    k2 = func(t + h / 3, y + h / 3 * k1)
    k3 = func(t + 2 * h / 3, y + h * (k2 - k1 / 3))
    k4 = func(t + h, y + h * (k1 - k2 + k3))
    return y + h / 8 * (k1 + 3 * (k2 + k3) + k4)


class FixedStepRK4(Integrator):
    """RK4 with a fixed step size (the last step of each output interval clipped so the grid
    hits every output time, as torchdiffeq does), or with ``n_steps`` equal steps over the
    whole span shared out over the output intervals in proportion to their lengths.

    Grid points are built from the tensor ``t``, so a trainable end time receives its
    gradient through the last step."""

    def __init__(self, rule: str = "classic", step_size: float | None = None,
                 n_steps: int | None = None):
        if rule not in RK4_RULES:
            raise ValueError(f"rule must be one of {RK4_RULES}, not {rule!r}")
        if (step_size is None) == (n_steps is None):
            raise ValueError("give exactly one of step_size and n_steps")
        self.rule, self.step_size, self.n_steps = rule, step_size, n_steps

    def _points(self, a: torch.Tensor, b: torch.Tensor, span: float) -> list[torch.Tensor]:
        length = float((b - a).detach())
        if self.step_size is not None:
            h = math.copysign(self.step_size, length)
            n = max(1, math.ceil(abs(length) / self.step_size - _GRID_SLACK))
            return [a + k * h for k in range(n)] + [b]
        n = max(1, round(self.n_steps * abs(length) / span)) if span else 1
        return [a + (b - a) * (k / n) for k in range(n)] + [b]

    def __call__(self, func: Func, y0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        span = abs(float((t[-1] - t[0]).detach()))
        ys, y = [y0], y0
        for a, b in pairwise(t):
            for ta, tb in pairwise(self._points(a, b, span)):
                y = rk4_step(func, ta, y, tb - ta, self.rule)
                self.nfe += 4
            ys.append(y)
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
