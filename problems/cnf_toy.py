"""``cnf_toy``: a continuous normalizing flow on a 2-D toy density (docs/papers.md).

A fresh training batch is drawn every iteration (a generator seeded by the cell's seed and
the iteration, so both strategies see the same batches); validation and test samples are
fixed and disjoint from training draws. The model is FFJORD's: one block of concat-squash
layers (64-64-64, tanh) with a trainable end time T = σ² starting at 0.5, exact divergence;
Adam, lr 1e-3, weight decay 1e-5, batch 100 (the paper trains 10 000 iterations).

Besides the CNF metrics, the history holds samples for the report's figure: ``split``
``data`` (test samples) and ``model`` (f⁻¹(y), y ~ 𝒩(0, I), with the trained integrator),
metrics ``x0``/``x1``, one step per sample.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from harness.solvers.node import NodeSolution
from harness.solvers.node import problem as cnf

from harness.params import Param
from harness.plugin import Metric, Problem, RunContext
from harness.vocabulary import DATASET

from .datasets.toy2d import GENERATORS, sample_toy

# Independent streams of the seed: training batches, validation, test, generated samples.
TRAIN, VAL, TEST, SAMPLES = 1, 2, 3, 4


class CNFToy(Problem):
    """A CNF on a 2-D toy density (8gaussians, checkerboard, moons, …), fresh samples each
    iteration."""

    name = "cnf_toy"
    family = "node"
    parameters: ClassVar[dict[str, Param]] = {
        "dataset": Param(str, "8gaussians", "toy density", choices=tuple(GENERATORS),
                         role=DATASET),
        **cnf.cnf_parameters(),
        "n_val": Param(int, 1000, "fixed validation samples", low=1),
        "n_test": Param(int, 2000, "held-out test samples", low=1),
        "n_samples": Param(int, 1000, "generated samples logged for the figure (0: none)",
                           low=0),
    }
    metrics: ClassVar[dict[str, Metric]] = cnf.CNF_METRICS
    smoke_params: ClassVar[dict[str, Any]] = {
        "hidden": 8, "depth": 1, "iterations": 2, "batch_size": 16, "n_val": 16, "n_test": 32,
        "n_samples": 8, "val_every": 1,
    }

    def build(self, seed: int, run: RunContext) -> cnf.CNFTask:
        p = self.params
        dtype = cnf.DTYPES[p["dtype"]]
        name = p["dataset"]

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, dtype=dtype, device=run.device)

        def draw(step: int) -> torch.Tensor:
            return tensor(sample_toy(name, p["batch_size"],
                                     np.random.default_rng([seed, TRAIN, step])))

        x_val = tensor(sample_toy(name, p["n_val"], np.random.default_rng([seed, VAL])))
        x_test = tensor(sample_toy(name, p["n_test"], np.random.default_rng([seed, TEST])))
        return cnf.CNFTask(cnf.build_model(p, 2, run.device), draw, x_val, x_test, p["iterations"],
                       p["lr"], p["weight_decay"], p["val_every"])

    def evaluate(self, task: cnf.CNFTask, solution: NodeSolution, run: RunContext) -> dict:
        out = cnf.evaluate_cnf(task, solution, run)
        n = self.params["n_samples"]
        if n:
            gen = torch.Generator().manual_seed(run.seed * 1000 + SAMPLES)
            y = torch.randn(n, 2, generator=gen, dtype=torch.float64).to(task.x_test)
            with torch.no_grad():
                x = task.model.inverse(solution.tester, y)
            for split, pts in (("data", task.x_test[:n]), ("model", x)):
                for i, (a, b) in enumerate(pts.double().cpu().tolist()):
                    run.log("x0", a, step=i, split=split)
                    run.log("x1", b, step=i, split=split)
        return out
