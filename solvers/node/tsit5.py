"""Tsitouras' 5(4) Runge–Kutta pair (Tsit5; Ch. Tsitouras, Comput. Math. Appl. 62, 2011),
the solver of the paper's time-series experiment, added to torchdiffeq's adaptive solvers.

torchdiffeq 0.2.5 has no ``tsit5``. Its adaptive solvers are Butcher tableaus on one
step-size controller (``RKAdaptiveStepsizeODESolver``), so Tsit5 is a tableau plus the
dense-output weights at the step's midpoint (torchdiffeq's interpolation uses them).
:func:`register_tsit5` adds ``method="tsit5"`` to the solver table that both ``odeint`` and
``odeint_adjoint`` read. That table is torchdiffeq's private API: the test suite checks
Tsit5's order and accuracy through it on every run, so a torchdiffeq change that breaks it
fails loudly.
"""

from __future__ import annotations

import torch

# Nodes c₂…c₇ and rows a₂…a₇ of the tableau (a₇ = b: first same as last).
C = [0.161, 0.327, 0.9, 0.9800255409045097, 1.0, 1.0]
A = [
    [0.161],
    [-0.008480655492356989, 0.335480655492357],
    [2.8971530571054935, -6.359448489975075, 4.3622954328695815],
    [5.325864828439257, -11.748883564062828, 7.4955393428898365, -0.09249506636175525],
    [5.86145544294642, -12.92096931784711, 8.159367898576159, -0.071584973281401,
     -0.028269050394068383],
    [0.09646076681806523, 0.01, 0.4798896504144996, 1.379008574103742, -3.290069515436081,
     2.324710524099774],
]
B = [*A[-1], 0.0]
# b − b̂: the fifth-order solution minus the embedded fourth-order one.
B_ERROR = [-0.00178001105222577714, -0.0008164344596567469, 0.007880878010261995,
           -0.1447110071732629, 0.5823571654525552, -0.45808210592918697, 1 / 66]
# Dense output b_i(θ) = Σ_j R[i][j] θ^(j+1); torchdiffeq wants b_i(1/2).
R = [
    [1.0, -2.763706197274826, 2.9132554618219126, -1.0530884977290216],
    [0.0, 0.1317, -0.2234, 0.1017],
    [0.0, 3.9302962368947516, -5.941033872131505, 2.490627285651253],
    [0.0, -12.411077166933676, 30.33818863028232, -16.548102889244902],
    [0.0, 37.50931341651104, -88.1789048947664, 47.37952196281928],
    [0.0, -27.896526289197286, 65.09189467479366, -34.87065786149661],
    [0.0, 1.5, -4.0, 2.5],
]


def dense_weights(theta: float) -> list[float]:
    """b_i(θ): y(t₀ + θh) ≈ y₀ + h Σ b_i(θ) k_i."""
    return [sum(r * theta ** (j + 1) for j, r in enumerate(row)) for row in R]


def register_tsit5() -> None:
    """Make ``method="tsit5"`` available to torchdiffeq's ``odeint``/``odeint_adjoint``."""
    from torchdiffeq._impl.odeint import SOLVERS
    from torchdiffeq._impl.rk_common import RKAdaptiveStepsizeODESolver, _ButcherTableau

    if "tsit5" in SOLVERS:
        return

    def f64(values: list[float]) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float64)

    class Tsit5Solver(RKAdaptiveStepsizeODESolver):
        order = 5
        tableau = _ButcherTableau(alpha=f64(C), beta=[f64(row) for row in A], c_sol=f64(B),
                                  c_error=f64(B_ERROR))
        mid = f64(dense_weights(0.5))

    SOLVERS["tsit5"] = Tsit5Solver
