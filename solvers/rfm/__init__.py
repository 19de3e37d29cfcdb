"""Solvers for random-feature least squares ``W Z ≈ C`` (docs/papers.md): minimum norm,
Tikhonov (weight decay), gradient flow (early stopping) and hybrid LSQR with GCV.

Library use, without the harness::

    from harness.solvers.rfm import min_norm, tikhonov, gradient_flow, hybrid_lsqr
    W = tikhonov(Z, C, alpha=1e-2)          # Z: m × n features, C: t × n targets
    res = hybrid_lsqr(Z, C)                 # res.W, res.lam, res.n_iter
"""

from harness.family import declare_family

from .gcv import REGPARAM_RULES, adaptive_weight, gcv_value, minimize_gcv
from .hybrid import STOP_RULES, HybridResult, hybrid_lsqr
from .spectral import (
    SpectralFit,
    gradient_flow,
    gradient_flow_filter,
    half_mse,
    min_norm,
    min_norm_filter,
    minimize_on_log_grid,
    tikhonov,
    tikhonov_filter,
)

# The report section (imported only by `harness report`) and the published claims
# (claims/*.yaml, package data) of this family.
declare_family("rfm", "Random-feature models: hybrid vs tuned regularization",
               section=f"{__name__}.report:section", claims=__name__)

__all__ = [
    "REGPARAM_RULES", "STOP_RULES", "HybridResult", "SpectralFit", "adaptive_weight",
    "gcv_value", "gradient_flow", "gradient_flow_filter", "half_mse", "hybrid_lsqr",
    "min_norm", "min_norm_filter", "minimize_gcv", "minimize_on_log_grid", "tikhonov",
    "tikhonov_filter",
]
