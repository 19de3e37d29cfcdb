"""What the separable family's problems (``problems/peaks.py``, ``cdr.py``,
``autoencoder.py``) share: the task handed to ``slimtrain``/``adam`` and the evaluation
(losses and per-sample relative errors ‖W z − c‖/‖c‖ on each split, summarised as the
paper's table prints them: mean, std, min, max; and their median). Like the strategies, an
adapter between the family's numerics and the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from harness.plugin import Metric, RunContext

from .train import REL_ERR_STATS, SPLITS, SeparableSolution, split_errors

SEPARABLE_METRICS: dict[str, Metric] = {
    "test_loss": Metric(float, "the problem's reported loss on the test set: (1/2N)‖WZ − C‖² "
                               "(peaks, cdr) or the per-image sum of squares (autoencoder)"),
    **{f"rel_err_{split}_{stat}": Metric(float, f"{stat} over the {split} samples of the "
                                                f"relative error ‖W z − c‖/‖c‖")
       for split in SPLITS for stat in REL_ERR_STATS},
}


@dataclass
class SeparableData:
    """Feature extractor, data splits and regularizer; implements
    :class:`harness.solvers.separable.train.SeparableTask`."""

    features: nn.Module
    n_targets: int
    alpha_theta: float
    data: dict[str, tuple[torch.Tensor, torch.Tensor]]
    loss_weight: float = 0.5  # training loss (w/N)‖WZ − C‖²: the MATLAB code's 1/2
    eval_weight: float = 0.5  # reported losses, the same form

    def regularizer(self) -> torch.Tensor:
        reg = getattr(self.features, "regularizer", None)
        if reg is None:  # plain weight decay on θ
            return sum((p**2).sum() for p in self.features.parameters())
        return reg()


def evaluate_separable(task: SeparableData, solution: SeparableSolution,
                       run: RunContext) -> dict[str, Any]:
    """Test loss and the relative-error summary of every split."""
    out: dict[str, Any] = {}
    for split in SPLITS:
        loss, rel = split_errors(solution, *task.data[split], weight=task.eval_weight)
        if split == "test":
            out["test_loss"] = loss
        rel = rel.double()
        out.update({f"rel_err_{split}_median": float(rel.quantile(0.5)),
                    f"rel_err_{split}_mean": float(rel.mean()),
                    f"rel_err_{split}_std": float(rel.std()) if len(rel) > 1 else 0.0,
                    f"rel_err_{split}_min": float(rel.min()),
                    f"rel_err_{split}_max": float(rel.max())})
    return out
