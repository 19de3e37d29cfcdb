"""``peaks``: approximate MATLAB's peaks surface with a separable network (docs/papers.md,
E1).

c = 3(1−x)² e^{−x²−(y+1)²} − 10(x/5 − x³ − y⁵) e^{−x²−y²} − ⅓ e^{−(x+1)²−y²} on [−3, 3]²;
``n_train`` (2000) training and ``n_val`` (1000) validation points uniform in the square,
drawn from the cell's seed; the test set is the 100 × 100 grid. Features: a dense 2 → w
layer (tanh, no bias), then the antisymmetric RK4 ResNet (width w, depth 8, T = 5) with
its smoothness regularizer (α_θ = 5e-6); W is 1 × (w + 1). Extra metric: the relative
error ‖c − ĉ‖/‖c‖ over the whole grid, as the paper reports.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from harness.solvers.separable.problem import SEPARABLE_METRICS, SeparableData, evaluate_separable
from harness.solvers.separable.resnet_features import AntisymmetricResNet
from harness.solvers.separable.train import SeparableSolution

from harness.params import Param
from harness.plugin import Metric, Problem, RunContext

GRID = 100


def peaks(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """MATLAB's peaks function."""
    return (3 * (1 - x) ** 2 * np.exp(-(x**2) - (y + 1) ** 2)
            - 10 * (x / 5 - x**3 - y**5) * np.exp(-(x**2) - y**2)
            - np.exp(-((x + 1) ** 2) - y**2) / 3)


def peaks_grid() -> tuple[np.ndarray, np.ndarray]:
    """The 100 × 100 test grid on [−3, 3]²: (points 10000 × 2, values 10000 × 1)."""
    g = np.linspace(-3, 3, GRID)
    x, y = np.meshgrid(g, g)
    pts = np.stack([x.ravel(), y.ravel()], axis=1)
    return pts, peaks(pts[:, 0], pts[:, 1])[:, None]


class Peaks(Problem):
    """Fit the peaks surface on [−3, 3]² with an antisymmetric RK4 ResNet + linear layer."""

    name = "peaks"
    family = "separable"
    parameters: ClassVar[dict[str, Param]] = {
        "n_train": Param(int, 2000, "training points", low=1),
        "n_val": Param(int, 1000, "validation points", low=1),
        "width": Param(int, 8, "width w of the ResNet", low=1),
        "depth": Param(int, 8, "RK4 layers", low=1),
        "final_time": Param(float, 5.0, "final time T of the ResNet", low=0, low_open=True),
    }
    metrics: ClassVar[dict[str, Metric]] = {
        **SEPARABLE_METRICS,
        "grid_rel_err": Metric(float, "‖c − ĉ‖/‖c‖ over the 100 × 100 grid"),
    }
    smoke_params: ClassVar[dict[str, Any]] = {"n_train": 40, "n_val": 20, "width": 4,
                                              "depth": 2}
    alpha_theta = 5e-6

    def build(self, seed: int, run: RunContext) -> SeparableData:
        p = self.params
        rng = np.random.default_rng([seed, 1])
        pts = rng.uniform(-3, 3, size=(p["n_train"] + p["n_val"], 2))
        vals = peaks(pts[:, 0], pts[:, 1])[:, None]
        grid, grid_vals = peaks_grid()

        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, dtype=torch.float64, device=run.device)

        n = p["n_train"]
        data = {"train": (t(pts[:n]), t(vals[:n])), "val": (t(pts[n:]), t(vals[n:])),
                "test": (t(grid), t(grid_vals))}
        net = AntisymmetricResNet(2, p["width"], p["depth"], p["final_time"],
                                  generator=torch.Generator().manual_seed(seed)).to(run.device)
        return SeparableData(net, 1, self.alpha_theta, data)

    def evaluate(self, task: SeparableData, solution: SeparableSolution,
                 run: RunContext) -> dict[str, Any]:
        out = evaluate_separable(task, solution, run)
        Y, C = task.data["test"]
        with torch.no_grad():
            out["grid_rel_err"] = float((solution.predict(Y) - C).norm() / C.norm())
        return out
