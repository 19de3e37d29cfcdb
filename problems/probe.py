"""``probe``: a tiny deterministic problem for checking a backend end to end.

Pair it with the ``probe`` strategy to see how a cluster set-up handles cells that work,
raise, produce NaN, run out of memory, crash their worker, sleep past their timeout or keep
a CPU busy (scaling and overhead benchmarks use it too)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from harness.params import Param
from harness.plugin import Metric, Problem, RunContext


class Probe(Problem):
    """A seeded random vector; the metric is a deterministic function of it."""

    name = "probe"
    family = "probe"
    parameters: ClassVar[dict[str, Param]] = {
        "size": Param(int, 1000, "length of the random vector", low=1),
    }
    metrics: ClassVar[dict[str, Metric]] = {
        "probe_value": Metric(float, "mean of the squared vector entries after the strategy"),
    }
    smoke_params: ClassVar[dict[str, Any]] = {"size": 100}

    def build(self, seed: int, run: RunContext) -> torch.Tensor:
        x = np.random.default_rng([seed, 1]).standard_normal(self.params["size"])
        return torch.as_tensor(x, dtype=torch.float64, device=run.device)

    def evaluate(self, task: torch.Tensor, solution: torch.Tensor, run: RunContext) -> dict:
        return {"probe_value": float((solution**2).mean())}
