"""Training loops of the separable-network strategies, and the evaluation they share.

A problem hands over a :class:`SeparableTask`: a feature extractor F(y; θ) (a module whose
output is N × features, or N × features × P for P observations per sample such as the
pixels of an image), the data splits, and its regularizer R(θ). The network is
f(y) = W·[F(y; θ); 1] with the bias as a row of ones; the training loss of a batch of N
samples is

    (w/N)·‖W Z − C‖²_F + (α_θ/2)·R(θ)  [+ (α_W/2)·‖W‖²_F for Adam]

with the problem's ``loss_weight`` w: 1/2 for the MATLAB experiments (peaks, CDR), 1/P for
the autoencoder (P pixels: the pixel-mean MSE of the authors' PyTorch code, so that α_θ and
α_W act as Adam's ``weight_decay`` does there — its gradient is that of (α/2)‖θ‖²). The
reported losses use the problem's ``eval_weight`` instead (1/2, or 1 for the autoencoder's
per-image sum of squares).

``slimtrain`` updates W by :class:`~harness.solvers.separable.slimtik.SlimTik` and then takes one
Adam step on θ with the new W held fixed; ``adam`` trains θ and W jointly.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import nn

from ..recording import NullRecorder, Recorder, device_clock
from .slimtik import SlimTik

SPLITS = ("train", "val", "test")
# Summaries of the per-sample relative error per split (``rel_err_<split>_<stat>``): the
# paper's table prints mean, std, min and max; the median is there for a reader, as the
# error is heavy-tailed where ‖c‖ is near zero (peaks).
REL_ERR_STATS = ("median", "mean", "std", "min", "max")


class SeparableTask(Protocol):
    """What a separable-network problem hands its strategies."""

    features: nn.Module
    n_targets: int
    alpha_theta: float  # the problem's default weight of R(θ)
    data: dict[str, tuple[torch.Tensor, torch.Tensor]]  # split → (inputs, targets)
    loss_weight: float  # training loss: loss_weight · ‖WZ − C‖² / samples
    eval_weight: float  # reported losses: eval_weight · ‖WZ − C‖² / samples

    def regularizer(self) -> torch.Tensor:
        """R(θ) of the feature extractor."""


def feature_matrix(F: torch.Tensor) -> torch.Tensor:
    """Features (N × f, or N × f × P) → Z ((f + 1) × N·P) with the bias row of ones."""
    F = F if F.dim() == 3 else F[:, :, None]
    N, f, P = F.shape
    Z = F.permute(1, 0, 2).reshape(f, N * P)
    return torch.cat([Z, torch.ones(1, N * P, dtype=Z.dtype, device=Z.device)])


def target_matrix(C: torch.Tensor) -> torch.Tensor:
    """Targets (N × t, or N × t × P) → (t × N·P), columns in the order of feature_matrix."""
    C = C if C.dim() == 3 else C[:, :, None]
    N, t, P = C.shape
    return C.permute(1, 0, 2).reshape(t, N * P)


def n_features(task: SeparableTask) -> int:
    """Rows of Z (features + bias) for this task."""
    x = task.data["train"][0][:2]  # two rows: batch norm needs more than one in training
    with torch.no_grad():
        return feature_matrix(task.features.eval()(x)).shape[0]


@dataclass
class SeparableSolution:
    """A trained separable network: the feature extractor and W (targets × features+1)."""

    features: nn.Module
    W: torch.Tensor

    def predict(self, Y: torch.Tensor) -> torch.Tensor:
        """Predictions shaped like the targets (N × t, or N × t × P)."""
        F = self.features(Y)
        out = torch.einsum("tf,fnp->ntp", self.W[:, :-1], (F if F.dim() == 3 else
                                                          F[:, :, None]).permute(1, 0, 2))
        out = out + self.W[:, -1][None, :, None]
        return out if F.dim() == 3 else out[:, :, 0]


def split_errors(solution: SeparableSolution, Y: torch.Tensor, C: torch.Tensor,
                 batch: int = 64, weight: float = 0.5) -> tuple[float, torch.Tensor]:
    """(loss (weight/N)‖WZ − C‖², per-sample relative errors ‖W z − c‖/‖c‖) of one split, in
    chunks of ``batch`` samples (64 autoencoder images have 51 MB of per-pixel features)."""
    sq, rel = 0.0, []
    training = solution.features.training
    solution.features.eval()  # batch norm with its running statistics
    try:
        with torch.no_grad():
            for i in range(0, len(Y), batch):
                diff = (solution.predict(Y[i:i + batch]) - C[i:i + batch]).flatten(1)
                sq += float((diff.double() ** 2).sum())
                rel.append(diff.norm(dim=1) / C[i:i + batch].flatten(1).norm(dim=1))
    finally:
        solution.features.train(training)
    return weight * sq / len(Y), torch.cat(rel)


@dataclass
class SeparableStats:
    """Per-epoch records of one training run."""

    losses: dict[str, list[float]] = field(default_factory=lambda: {s: [] for s in SPLITS})
    epoch_s: list[float] = field(default_factory=list)
    theta_change: list[float] = field(default_factory=list)
    lam_bar: float | None = None

    def summary(self) -> dict[str, float | None]:
        """Strategy metrics: final train/val losses, the best validation loss, median time
        per epoch, final Λ̄."""
        val = self.losses["val"]
        return {"train_loss": self.losses["train"][-1], "val_loss": val[-1],
                "best_val_loss": min(val), "epoch_s": statistics.median(self.epoch_s),
                "lam_bar": self.lam_bar}


def training_loss(task: SeparableTask, W: torch.Tensor, Z: torch.Tensor, C: torch.Tensor,
                  n_b: int, alpha_theta: float, alpha_w: float = 0.0) -> torch.Tensor:
    """(w/n_b)‖WZ − C‖² + (α_θ/2)R(θ) + (α_W/2)‖W‖² for a batch of n_b samples whose
    features and targets are Z and C (w: the task's ``loss_weight``)."""
    loss = task.loss_weight * ((W @ Z - C) ** 2).sum() / n_b
    loss = loss + alpha_theta / 2 * task.regularizer()
    return loss + alpha_w / 2 * (W**2).sum() if alpha_w else loss


def _theta(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()]).clone()


def train_separable(task: SeparableTask, recorder: Recorder | None = None, *, method: str,
                    lr: float, epochs: int, batch_size: int, alpha_theta: float | None = None,
                    alpha_w: float = 0.0, slimtik: SlimTik | None = None, seed: int = 0,
                    clock: Callable[[], float] | None = None
                    ) -> tuple[SeparableSolution, SeparableStats]:
    """Train with ``method`` ``slimtrain`` (needs ``slimtik``) or ``adam``; log to
    ``recorder`` (see ``harness.solvers.recording``; none by default) per batch Λ and Λ̄
    (slimtrain; with sGCV also its trace term and denominator base at the chosen Λ), per
    epoch the loss of each split, ‖θₖ − θₖ₋₁‖ and the epoch time, timed with ``clock``
    (default: synchronized on the data's device). Raises FloatingPointError on a
    non-finite loss."""
    Y, C = task.data["train"]
    device = Y.device
    run = recorder or NullRecorder()
    clock = clock or device_clock(device)
    a_theta = task.alpha_theta if alpha_theta is None else alpha_theta
    n_f = n_features(task)
    task.features.train()
    if method == "slimtrain":
        W = slimtik.W
        params = list(task.features.parameters())
    else:
        gen = torch.Generator().manual_seed(seed)
        bound = 1 / math.sqrt(n_f)  # as nn.Linear
        W = nn.Parameter(((torch.rand(task.n_targets, n_f, generator=gen, dtype=torch.float64)
                           * 2 - 1) * bound).to(Y))
        params = [*task.features.parameters(), W]
    optimizer = torch.optim.Adam(params, lr=lr)
    stats = SeparableStats()
    theta_old, step = _theta(task.features), 0
    for epoch in range(epochs):
        task.features.train()
        t0 = clock()
        order = torch.as_tensor(np.random.default_rng([seed, 7, epoch]).permutation(len(Y)),
                                device=device)
        for start in range(0, len(Y), batch_size):
            idx = order[start:start + batch_size]
            Z, Cb = feature_matrix(task.features(Y[idx])), target_matrix(C[idx])
            n_b = len(idx)
            if method == "slimtrain":
                info = slimtik.update(Z.detach(), Cb, n_samples=n_b)
                W = slimtik.W.to(Z)
                run.log("lam", info.lam, step=step, epoch=epoch)
                run.log("lam_bar", info.lam_bar, step=step, epoch=epoch)
                if info.free is not None:  # sGCV's denominator base: ≤ 0 is the wrong branch
                    run.log("sgcv_trace", info.trace, step=step, epoch=epoch)
                    run.log("sgcv_free", info.free, step=step, epoch=epoch)
            loss = training_loss(task, W, Z, Cb, n_b, a_theta,
                                 alpha_w if method == "adam" else 0.0)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at epoch {epoch}, batch {step}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
        stats.epoch_s.append(clock() - t0)
        theta = _theta(task.features)
        stats.theta_change.append(float((theta - theta_old).norm()))
        theta_old = theta
        solution = SeparableSolution(task.features, W.detach())
        with run.evaluating():
            for split in SPLITS:
                value = split_errors(solution, *task.data[split],
                                     weight=task.eval_weight)[0]
                stats.losses[split].append(value)
                run.log("loss", value, step=epoch, split=split, epoch=epoch)
        run.log("theta_change", stats.theta_change[-1], step=epoch, epoch=epoch)
        run.log("epoch_s", stats.epoch_s[-1], step=epoch, epoch=epoch)
    stats.lam_bar = slimtik.lam_bar if slimtik is not None else None
    return SeparableSolution(task.features, W.detach()), stats
