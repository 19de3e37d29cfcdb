"""One training loop for both neural-ODE strategies: only the integrator differs.

A problem supplies a :class:`NodeTask` (model, optimizer, batches, loss); a strategy supplies
an :class:`~harness.solvers.node.integrators.Integrator`. Per iteration the loop records the loss,
the forward and backward function evaluations, and the synchronized wall time; it can stop
the clock at a target loss and run the Taylor check at the initial weights.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from ..recording import NullRecorder, Recorder, device_clock
from .integrators import Integrator, reference_solver
from .taylor import TaylorResult, taylor_check

SUMMARY_WINDOW = 10  # final train loss = mean over the last this many iterations


class NodeTask(Protocol):
    """What a neural-ODE problem hands its strategies."""

    model: nn.Module
    iterations: int
    val_every: int  # validation period in iterations; 0: none

    def make_optimizer(self) -> torch.optim.Optimizer:
        """A fresh optimizer over ``model``'s parameters."""

    def batch(self, step: int) -> Any:
        """The training batch of iteration ``step`` (deterministic from the seed)."""

    def loss(self, solve: Integrator, batch: Any) -> torch.Tensor:
        """The scalar training loss of ``batch`` with the integrator ``solve``."""

    def val_loss(self, solve: Integrator) -> float:
        """The validation loss (called under ``torch.no_grad``)."""


@dataclass
class NodeSolution:
    """A trained neural ODE: the model, the integrator it was trained with, a finer one of
    the same kind, the tight-tolerance reference (re-discretization checks) and, when it
    differs from the training one, the integrator of the test metrics (the paper trained
    its tabular CNFs at h = 0.25 and tested at h = 0.1)."""

    model: nn.Module
    solve: Integrator
    fine: Integrator
    reference: Integrator = field(default_factory=reference_solver)
    test: Integrator | None = None

    @property
    def tester(self) -> Integrator:
        """The integrator of the test metrics: ``test``, else the training one."""
        return self.test if self.test is not None else self.solve


@dataclass
class TrainStats:
    """Per-iteration records of one training run."""

    loss: list[float] = field(default_factory=list)
    nfe_fwd: list[int] = field(default_factory=list)
    nfe_bwd: list[int] = field(default_factory=list)
    iter_s: list[float] = field(default_factory=list)
    time_to_target: float | None = None
    iter_to_target: int | None = None
    taylor: TaylorResult | None = None

    def summary(self) -> dict[str, float | None]:
        """The strategy metrics of the ``node`` family."""
        tail = self.loss[-SUMMARY_WINDOW:]
        return {
            "train_loss": sum(tail) / len(tail) if tail else None,
            "nfe_fwd": statistics.fmean(self.nfe_fwd) if self.nfe_fwd else None,
            "nfe_bwd": statistics.fmean(self.nfe_bwd) if self.nfe_bwd else None,
            "iter_s": statistics.median(self.iter_s) if self.iter_s else None,
            "time_to_target": self.time_to_target,
            "iter_to_target": self.iter_to_target,
            "taylor_slope_e0": self.taylor.slope_e0 if self.taylor else None,
            "taylor_slope_e1": self.taylor.slope_e1 if self.taylor else None,
        }


def taylor_step(task: NodeTask, solve: Integrator, seed: int) -> TaylorResult:
    """The Taylor check of the strategy's gradient on the first batch, at the current
    weights (for Opt-Disc the tested gradient is the adjoint's).

    Every loss evaluation of the check draws the same random numbers (torch's generators
    are re-seeded inside a fork), so a stochastic loss — a Hutchinson trace estimate with
    its Gaussian probe — is one fixed function of the weights, as the check requires."""
    batch = task.batch(0)
    params = [p for p in task.model.parameters() if p.requires_grad]
    device = params[0].device if params else torch.device("cpu")
    devices = [device] if device.type == "cuda" else []

    def loss() -> torch.Tensor:
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(seed)
            return task.loss(solve, batch)

    return taylor_check(loss, params, seed=seed)


def train_node(task: NodeTask, solve: Integrator, recorder: Recorder | None = None, *,
               clock: Callable[[], float] | None = None, target_loss: float | None = None,
               taylor: bool = False, seed: int = 0) -> TrainStats:
    """Train ``task.model`` with ``solve``; log per-iteration values to ``recorder`` (see
    ``harness.solvers.recording``; none by default) and time each iteration with ``clock`` (default:
    synchronized on the model's device). Raises FloatingPointError on a non-finite loss."""
    stats = TrainStats()
    run = recorder or NullRecorder()
    clock = clock or device_clock(next(task.model.parameters()).device)
    if taylor:
        with run.evaluating():
            stats.taylor = taylor_step(task, solve, seed)
        for k, (e0, e1) in enumerate(zip(stats.taylor.e0, stats.taylor.e1, strict=True)):
            run.log("taylor_e0", e0, step=k + 1, split="taylor")
            run.log("taylor_e1", e1, step=k + 1, split="taylor")
    optimizer = task.make_optimizer()
    elapsed = 0.0
    for step in range(task.iterations):
        t0 = clock()
        batch = task.batch(step)
        optimizer.zero_grad(set_to_none=True)
        solve.reset()
        loss = task.loss(solve, batch)
        fwd = solve.nfe
        loss.backward()
        bwd = solve.nfe - fwd
        optimizer.step()
        dt = clock() - t0
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"non-finite training loss {value} at iteration {step}")
        elapsed += dt
        stats.loss.append(value)
        stats.nfe_fwd.append(fwd)
        stats.nfe_bwd.append(bwd)
        stats.iter_s.append(dt)
        if target_loss is not None and stats.time_to_target is None and value <= target_loss:
            stats.time_to_target, stats.iter_to_target = elapsed, step + 1
        run.log("loss", value, step=step)
        run.log("nfe_fwd", fwd, step=step)
        run.log("nfe_bwd", bwd, step=step)
        if task.val_every and ((step + 1) % task.val_every == 0
                               or step + 1 == task.iterations):
            with run.evaluating(), torch.no_grad():
                run.log("loss", task.val_loss(solve), step=step, split="val")
    return stats
