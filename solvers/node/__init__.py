"""Neural-ODE training (docs/papers.md): Discretize-Optimize vs Optimize-Discretize.

Library use, without the harness::

    from harness.solvers.node import FixedStepRK4, Adaptive, taylor_check
    rk4 = FixedStepRK4("3/8", step_size=0.25)       # Disc-Opt: backprop through RK4
    ys = rk4(func, y0, t); rk4.nfe                  # states at t, evaluations of func
    adj = Adaptive("dopri5", rtol=1e-5, atol=1e-5, adjoint=True)   # Opt-Disc
"""

from harness.family import declare_family

from .integrators import (
    ADAPTIVE_METHODS,
    RK4_RULES,
    Adaptive,
    FixedStepRK4,
    Integrator,
    reference_solver,
    rk4_step,
    unless_blown_up,
)
from .taylor import TaylorResult, fitted_slope, taylor_check
from .train import NodeSolution, NodeTask, TrainStats, taylor_step, train_node

# The report section (imported only by `harness report`) and the published claims
# (claims/*.yaml, package data) of this family.
declare_family("node", "Neural ODEs: Discretize-Optimize vs Optimize-Discretize",
               section=f"{__name__}.report:section", claims=__name__)

__all__ = [
    "ADAPTIVE_METHODS", "RK4_RULES", "Adaptive", "FixedStepRK4", "Integrator", "NodeSolution",
    "NodeTask", "TaylorResult", "TrainStats", "fitted_slope", "reference_solver", "rk4_step",
    "taylor_check", "taylor_step", "train_node", "unless_blown_up",
]
