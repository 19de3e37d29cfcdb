"""Spectral-filter solutions of the random-feature least-squares problem.

The model is ``W Z ≈ C`` with features ``Z`` (m × n: m features, n samples) and one-hot
targets ``C`` (t × n). With the thin SVD ``Zᵀ = U diag(s) Vᵀ`` every method of the paper
is a filter on the singular values::

    W = C U diag(φ(s)) Vᵀ

* minimum norm:   φ(s) = 1/s                       (pseudo-inverse)
* Tikhonov:       φ(s) = s / (s² + n α²)           (argmin (1/2n)‖WZ − C‖² + (α²/2)‖W‖²)
* gradient flow:  φ(s) = (1 − exp(−s² t / (m n))) / s
                  (gradient flow on (1/(2 m n))‖WZ − C‖² from W = 0, stopped at time t; the
                  m·n normalisation is the authors' code's, see docs/rfm.md)

Everything is float64 torch and runs on whatever device the inputs live on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize_scalar

Filter = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class SpectralFit:
    """The SVD of ``Zᵀ`` and the targets projected on it; cheap to re-filter.

    Build it with :meth:`of`; then ``weights(φ)`` costs one t×r×m product and
    ``outputs(φ, P)`` (predictions on data projected with :meth:`project`) one t×r×n'.
    """

    U: torch.Tensor  # n × r left singular vectors of Zᵀ (sample space)
    s: torch.Tensor  # r singular values, descending, all above the rank tolerance
    V: torch.Tensor  # m × r right singular vectors (feature space)
    CU: torch.Tensor  # t × r: targets in the left singular basis
    n: int  # training samples
    m: int  # features

    @classmethod
    def of(cls, Z: torch.Tensor, C: torch.Tensor) -> SpectralFit:
        """Thin SVD of ``Zᵀ``, keeping the numerically nonzero singular values (pinv rule)."""
        m, n = Z.shape
        U, s, Vh = torch.linalg.svd(Z.T, full_matrices=False)
        tol = max(m, n) * torch.finfo(s.dtype).eps * s[0]
        keep = s > tol
        U, s, V = U[:, keep], s[keep], Vh[keep].T
        return cls(U=U, s=s, V=V, CU=C @ U, n=n, m=m)

    def weights(self, phi: torch.Tensor) -> torch.Tensor:
        """``W = C U diag(φ) Vᵀ`` (t × m) for filter values ``φ`` on ``self.s``."""
        return (self.CU * phi) @ self.V.T

    def train_outputs(self, phi: torch.Tensor) -> torch.Tensor:
        """``W Z`` on the training data without forming W: ``C U diag(φ s) Uᵀ``."""
        return (self.CU * (phi * self.s)) @ self.U.T

    def project(self, Z_other: torch.Tensor) -> torch.Tensor:
        """``Vᵀ Z'`` (r × n'): other data in the feature-space basis, for :meth:`outputs`."""
        return self.V.T @ Z_other

    def outputs(self, phi: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        """``W Z'`` for data already projected with :meth:`project`."""
        return (self.CU * phi) @ projected


def min_norm_filter(s: torch.Tensor) -> torch.Tensor:
    """φ(s) = 1/s: the minimum-norm least-squares (pseudo-inverse) solution."""
    return 1.0 / s


def tikhonov_filter(s: torch.Tensor, alpha: float, n: int) -> torch.Tensor:
    """φ(s) = s/(s² + n α²): weight decay α in the paper's per-sample scaling."""
    return s / (s * s + n * alpha * alpha)


def gradient_flow_filter(s: torch.Tensor, t: float, m: int, n: int) -> torch.Tensor:
    """φ(s) = (1 − exp(−s² t/(m n)))/s: gradient flow from zero, stopped at time t."""
    return -torch.expm1(-(s * s) * (t / (m * n))) / s


def min_norm(Z: torch.Tensor, C: torch.Tensor) -> torch.Tensor:
    """Minimum-norm least-squares weights ``W = C pinv(Z)`` (t × m)."""
    fit = SpectralFit.of(Z, C)
    return fit.weights(min_norm_filter(fit.s))


def tikhonov(Z: torch.Tensor, C: torch.Tensor, alpha: float) -> torch.Tensor:
    """Weight-decay weights: argmin_W (1/2n)‖WZ − C‖²_F + (α²/2)‖W‖²_F."""
    fit = SpectralFit.of(Z, C)
    return fit.weights(tikhonov_filter(fit.s, alpha, fit.n))


def gradient_flow(Z: torch.Tensor, C: torch.Tensor, t: float) -> torch.Tensor:
    """Gradient-flow (early-stopping) weights at time ``t`` (see the module docstring)."""
    fit = SpectralFit.of(Z, C)
    return fit.weights(gradient_flow_filter(fit.s, t, fit.m, fit.n))


def half_mse(outputs: torch.Tensor, targets: torch.Tensor) -> float:
    """The paper's error ‖WZ − C‖²_F / (2 · samples)."""
    return float(((outputs - targets) ** 2).sum() / (2 * targets.shape[1]))


@dataclass(frozen=True)
class Selection:
    """Result of a one-dimensional parameter search."""

    value: float  # the chosen parameter
    score: float  # the objective there
    grid: np.ndarray  # the log grid that was scanned
    scores: np.ndarray  # the objective on that grid


def minimize_on_log_grid(
    objective: Callable[[float], float], lo: float, hi: float, points: int = 100
) -> Selection:
    """Minimise ``objective`` over [lo, hi]: a log-spaced scan, then bounded Brent refinement
    in log space between the neighbours of the best grid point (the paper's grid search
    followed by ``fminsearch``, made robust to the scan's resolution)."""
    grid = np.logspace(np.log10(lo), np.log10(hi), points)
    scores = np.array([objective(float(x)) for x in grid])
    scores = np.where(np.isfinite(scores), scores, np.inf)
    best = int(np.argmin(scores))
    left, right = np.log10(grid[max(best - 1, 0)]), np.log10(grid[min(best + 1, points - 1)])
    value, score = float(grid[best]), float(scores[best])
    if right > left:
        res = minimize_scalar(
            lambda u: objective(10.0**u), bounds=(left, right), method="bounded",
            options={"xatol": 1e-6},
        )
        if res.fun < score:
            value, score = float(10.0**res.x), float(res.fun)
    return Selection(value=value, score=score, grid=grid, scores=scores)


def alpha_range(fit: SpectralFit) -> tuple[float, float]:
    """A search interval for the weight decay α that spans the whole spectrum: from far
    below the smallest singular value (≈ no regularisation) to far above the largest."""
    s_max, s_min = float(fit.s[0]), float(fit.s[-1])
    return s_min * 1e-3 / np.sqrt(fit.n), s_max * 1e2 / np.sqrt(fit.n)


def flow_time_range(fit: SpectralFit) -> tuple[float, float]:
    """A search interval for the gradient-flow time t, from 'barely moved' (every filter
    factor ≪ 1) to 'converged' (every factor ≈ 1/s)."""
    s_max, s_min = float(fit.s[0]), float(fit.s[-1])
    scale = fit.m * fit.n
    return scale / s_max**2 * 1e-3, scale / s_min**2 * 1e3
