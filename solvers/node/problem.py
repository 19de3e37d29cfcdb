"""What the node family's problems, the CNFs (``problems/cnf_toy.py``,
``problems/cnf_tabular.py``), share: the task handed to the ``node`` strategies, the common
parameters and metrics, and the evaluation (test NLL with the exact trace under three
discretizations, inverse error, end time). Like the strategies, an adapter between the
family's numerics and the engine."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from harness.params import Param
from harness.plugin import Metric, RunContext

from .cnf import CNF, DIVERGENCES, NONLINEARITIES, inverse_error
from .integrators import Integrator, unless_blown_up
from .train import NodeSolution

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def cnf_parameters(**defaults: Any) -> dict[str, Param]:
    """The model and training parameters of a CNF problem, with per-problem defaults."""
    d = {"hidden": 64, "depth": 3, "nonlinearity": "tanh", "num_blocks": 1, "T": 0.5,
         "batch_size": 100, "iterations": 1000, "lr": 1e-3, "weight_decay": 1e-5,
         "val_every": 100, "divergence": "exact", "dtype": "float32", **defaults}
    def param(kind: type, key: str, doc: str, **kw: Any) -> Param:
        if d[key] is None:  # a per-dataset default, resolved by the problem
            return Param(kind, None, f"{doc} (null: the dataset's setting)", nullable=True, **kw)
        return Param(kind, d[key], doc, **kw)

    return {
        "hidden": param(int, "hidden", "width of each hidden concat-squash layer", low=1),
        "depth": param(int, "depth", "number of hidden layers of the ODE net", low=1),
        "nonlinearity": param(str, "nonlinearity", "activation between layers",
                              choices=tuple(NONLINEARITIES)),
        "num_blocks": param(int, "num_blocks", "stacked CNF blocks", low=1),
        "T": param(float, "T", "initial end time of each block (T = σ², trained unless "
                   "train_T is false)", low=0, low_open=True),
        "train_T": Param(bool, True, "train the end time"),
        "batch_size": param(int, "batch_size", "training batch size", low=1),
        "iterations": param(int, "iterations", "Adam iterations", low=1),
        "lr": param(float, "lr", "Adam learning rate", low=0, low_open=True),
        "weight_decay": param(float, "weight_decay", "Adam weight decay", low=0),
        "val_every": param(int, "val_every", "validation NLL every this many iterations "
                           "(0: never)", low=0),
        "divergence": param(str, "divergence", "trace of ∂f/∂z in training: exact or "
                            "hutchinson (one Gaussian probe per solve); tests use exact",
                            choices=DIVERGENCES),
        "dtype": param(str, "dtype", "floating-point type of data and model in training",
                       choices=tuple(DTYPES)),
    }


CNF_METRICS: dict[str, Metric] = {
    "test_nll": Metric(float, "test negative log-likelihood (nats), exact trace, test "
                              "integrator (the trained one unless test_step_size is set)"),
    "test_nll_fine": Metric(float, "test NLL of the first test batch (≤ 1000 rows) with a "
                                   "finer integrator (step/4 or tol/100); null if it blows up"),
    "test_nll_dopri": Metric(float, "test NLL of the first test batch (≤ 1000 rows) with "
                                    "dopri5 at rtol = atol = 1e-8 (float64); null if it "
                                    "blows up"),
    "test_nfe": Metric(float, "function evaluations of one forward solve of a test batch, "
                              "test integrator"),
    "inv_err": Metric(float, "inverse error ‖f⁻¹(f(x)) − x‖_F / N on the first test batch, "
                             "test integrator both ways; null if it blows up"),
    "inv_err_dopri": Metric(float, "inverse error with dopri5 at 1e-8 both ways (float64); "
                                   "null if it blows up"),
    "end_time": Metric(float, "trained end time T (mean over blocks)"),
}


@dataclass
class CNFTask:
    """A CNF, its data and its optimizer settings; implements
    :class:`harness.solvers.node.NodeTask`.

    ``draw(step)`` gives the training batch of an iteration; ``x_val``/``x_test`` are fixed."""

    model: CNF
    draw: Callable[[int], torch.Tensor]
    x_val: torch.Tensor
    x_test: torch.Tensor
    iterations: int
    lr: float
    weight_decay: float
    val_every: int
    test_batch: int = 1000
    ref_nll: float | None = None  # true test NLL, when the density is known

    def make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.model.parameters(), lr=self.lr,
                                weight_decay=self.weight_decay)

    def batch(self, step: int) -> torch.Tensor:
        return self.draw(step)

    def loss(self, solve: Integrator, batch: torch.Tensor) -> torch.Tensor:
        return self.model.nll(solve, batch)

    def val_loss(self, solve: Integrator) -> float:
        return exact_nll(self.model, solve, self.x_val, self.test_batch)


def build_model(params: dict[str, Any], dim: int, device: Any) -> CNF:
    """The CNF of a problem's parameters (initialised from torch's seeded global RNG)."""
    p = params
    model = CNF(dim, [p["hidden"]] * p["depth"], p["nonlinearity"], p["num_blocks"], p["T"],
                p["train_T"], p["divergence"])
    return model.to(device=device, dtype=DTYPES[p["dtype"]])


def exact_nll(model: CNF, solve: Integrator, x: torch.Tensor, batch: int) -> float:
    """Mean NLL of x with the exact trace, in batches; the model's divergence is restored."""
    saved = model.blocks[0].dynamics.divergence
    model.set_divergence("exact")
    try:
        with torch.no_grad():
            total = sum(float(model.nll(solve, x[i:i + batch])) * len(x[i:i + batch])
                        for i in range(0, len(x), batch))
    finally:
        model.set_divergence(saved)
    return total / len(x)


def evaluate_cnf(task: CNFTask, solution: NodeSolution, run: RunContext) -> dict:
    """The CNF metrics (see :data:`CNF_METRICS`); dopri5 checks run in a float64 copy."""
    model, x, tester = task.model, task.x_test, solution.tester
    tester.reset()
    with torch.no_grad():
        model.set_divergence("exact")
        model.nll(tester, x[:task.test_batch])
    out: dict[str, float | None] = {"test_nfe": float(tester.nfe)}
    out["test_nll"] = exact_nll(model, tester, x, task.test_batch)
    first = x[:task.test_batch]  # the re-discretization checks: one batch is enough
    exact, first64 = copy.deepcopy(model).double(), first.double()
    out.update({
        "test_nll_fine": unless_blown_up(
            lambda: exact_nll(model, solution.fine, first, task.test_batch)),
        "inv_err": unless_blown_up(lambda: inverse_error(model, tester, first)),
        "test_nll_dopri": unless_blown_up(
            lambda: exact_nll(exact, solution.reference, first64, task.test_batch)),
        "inv_err_dopri": unless_blown_up(
            lambda: inverse_error(exact, solution.reference, first64)),
        "end_time": float(torch.stack([b.T.detach() for b in model.blocks]).mean()),
    })
    return out
