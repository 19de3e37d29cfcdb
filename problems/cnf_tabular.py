"""``cnf_tabular``: continuous normalizing flows on the MAF tabular sets (docs/papers.md).

``dataset``: ``power``, ``gas``, ``hepmass``, ``miniboone``, ``bsds300`` (the MAF files in
``data_dir`` / $HARNESS_DATA, see :mod:`problems.datasets.maf`) or an embedded stand-in:
``digits63`` (BSDS300-like) and Gaussian mixtures ``mix6``, ``mix8``, ``mix21``, ``mix43``
with the dimensions of POWER, GAS, HEPMASS, MINIBOONE (:mod:`problems.datasets.standins`).

Model per dataset as recalled from FFJORD's published settings (blocks / hidden layers /
width = factor·d / nonlinearity; not checked against FFJORD's code, see docs/node.md):
POWER 5/3/10/tanh, GAS 5/3/20/tanh, HEPMASS 10/2/10/softplus, MINIBOONE 1/2/20/softplus,
BSDS300 2/3/20/softplus; each stand-in takes the architecture of the set it stands in for.
Each parameter overrides its part. Training: Hutchinson trace, shuffled mini-batches
(epochs), Adam lr 1e-3, weight decay 1e-6, T starting at 1; test NLL with the exact trace.
FFJORD's early stopping and learning-rate drops are not reproduced: the grid fixes
``iterations``.
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

from .datasets import data_dir_param, resolve_data_dir
from .datasets.maf import FILES, Splits, check_maf_files, load_maf
from .datasets.standins import STANDINS, load_standin

# blocks, hidden layers, width factor, nonlinearity
ARCHITECTURES = {
    "power": (5, 3, 10, "tanh"), "gas": (5, 3, 20, "tanh"),
    "hepmass": (10, 2, 10, "softplus"), "miniboone": (1, 2, 20, "softplus"),
    "bsds300": (2, 3, 20, "softplus"),
}
STANDS_FOR = {"digits63": "bsds300", "mix6": "power", "mix8": "gas", "mix21": "hepmass",
              "mix43": "miniboone"}
TRAIN = 1  # stream of the seed that shuffles the training rows


class CNFTabular(Problem):
    """A CNF on a tabular density: the MAF sets (files) or embedded stand-ins."""

    name = "cnf_tabular"
    family = "node"
    parameters: ClassVar[dict[str, Param]] = {
        "dataset": Param(str, "mix43", "MAF set (power, gas, hepmass, miniboone, bsds300: "
                         "files in data_dir) or stand-in (digits63, mix6, mix8, mix21, mix43)",
                         choices=(*FILES, *STANDINS), role=DATASET),
        "data_dir": data_dir_param("the MAF sets"),
        **cnf.cnf_parameters(hidden=None, depth=None, nonlinearity=None, num_blocks=None, T=1.0,
                         batch_size=1000, weight_decay=1e-6, val_every=200,
                         divergence="hutchinson"),
        "n_test": Param(int, None, "test rows used (null: the whole test split)", low=1,
                        nullable=True),
    }
    metrics: ClassVar[dict[str, Metric]] = {
        **cnf.CNF_METRICS,
        "ref_nll": Metric(float, "true test NLL of the generating density (Gaussian-mixture "
                                 "stand-ins only; a floor for test_nll)"),
    }
    smoke_params: ClassVar[dict[str, Any]] = {
        "dataset": "mix6", "num_blocks": 1, "depth": 1, "hidden": 8, "iterations": 2,
        "batch_size": 32, "n_test": 64, "val_every": 1,
    }

    def check_inputs(self) -> None:
        name = self.params["dataset"]
        if name in FILES:
            check_maf_files(resolve_data_dir(self.params["data_dir"], name), name)

    def architecture(self, dim: int) -> dict[str, Any]:
        """The model parameters with the dataset's defaults filled in."""
        p = dict(self.params)
        name = p["dataset"]
        blocks, depth, factor, act = ARCHITECTURES[STANDS_FOR.get(name, name)]
        for key, value in (("num_blocks", blocks), ("depth", depth), ("hidden", factor * dim),
                           ("nonlinearity", act)):
            if p[key] is None:
                p[key] = value
        return p

    def _data(self) -> tuple[Splits, np.ndarray | None]:
        name = self.params["dataset"]
        if name in STANDINS:
            return load_standin(name)
        return load_maf(resolve_data_dir(self.params["data_dir"], name), name), None

    def build(self, seed: int, run: RunContext) -> cnf.CNFTask:
        splits, ref = self._data()
        p = self.architecture(splits.dim)
        dtype = cnf.DTYPES[p["dtype"]]

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, dtype=dtype, device=run.device)

        train = tensor(splits.train)
        n, batch = len(train), min(p["batch_size"], len(train))
        per_epoch = max(1, n // batch)
        order: dict[int, torch.Tensor] = {}

        def draw(step: int) -> torch.Tensor:
            epoch, k = divmod(step, per_epoch)
            if epoch not in order:
                order.clear()
                perm = np.random.default_rng([seed, TRAIN, epoch]).permutation(n)
                order[epoch] = torch.as_tensor(perm, device=run.device)
            return train[order[epoch][k * batch:(k + 1) * batch]]

        test = splits.test[: p["n_test"]] if p["n_test"] else splits.test
        return cnf.CNFTask(cnf.build_model(p, splits.dim, run.device), draw, tensor(splits.val),
                       tensor(test), p["iterations"], p["lr"], p["weight_decay"],
                       p["val_every"],
                       ref_nll=float(ref[:len(test)].mean()) if ref is not None else None)

    def evaluate(self, task: cnf.CNFTask, solution: NodeSolution, run: RunContext) -> dict:
        return {**cnf.evaluate_cnf(task, solution, run), "ref_nll": task.ref_nll}

