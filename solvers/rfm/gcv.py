"""Generalized cross-validation for the projected Tikhonov problems of a hybrid method.

At iteration k of Golub–Kahan the projected problem is ``min ‖B_k y − β₁e₁‖² + λ²‖y‖²``
with the (k+1)×k bidiagonal ``B_k = P diag(s) Qᵀ``; ``bhat = Pᵀ β₁e₁`` has k+1 entries
(k when the bidiagonalization broke down and the last row is zero). With the filter
factors ``f_i = λ²/(s_i² + λ²)`` the projected residual is
``Σ (f_i bhat_i)² + bhat_{k+1}²`` and the three criteria differ only in the denominator:

* ``gcv``       plain projected GCV:     (p − Σ (1 − f_i))²,        p = len(bhat)
* ``wgcv``      weighted GCV (weight ω): (p − ω Σ (1 − f_i))²
* ``gcv_full``  trace in the data space: (n − Σ (1 − f_i))²,        n = samples

``gcv_full`` is, up to a constant, the GCV *stopping* function of IR Tools' ``GCVstopfun``,
so choosing λ with it minimises the same function the stopping rule watches.
All functions are NumPy (the projected problems are tiny and live on the CPU).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import fminbound

REGPARAM_RULES = ("gcv", "wgcv", "gcv_full")
MATLAB_TOLX = 1e-4  # fminbnd's default TolX, which IR Tools leaves unchanged


def residual_sq(lam: np.ndarray, s: np.ndarray, bhat: np.ndarray) -> np.ndarray:
    """Squared projected residual ‖B_k y_λ − β₁e₁‖² for each λ in ``lam``."""
    lam2 = np.asarray(lam, dtype=float)[..., None] ** 2
    f = lam2 / (s**2 + lam2)
    tail = float(np.sum(bhat[len(s):] ** 2))
    return np.sum((f * bhat[: len(s)]) ** 2, axis=-1) + tail


def dof(lam: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Σ s_i²/(s_i² + λ²): the trace of the projected influence matrix for each λ."""
    lam2 = np.asarray(lam, dtype=float)[..., None] ** 2
    return np.sum(s**2 / (s**2 + lam2), axis=-1)


def gcv_value(
    lam: np.ndarray, s: np.ndarray, bhat: np.ndarray, rule: str, *, omega: float = 1.0,
    n_samples: int | None = None,
) -> np.ndarray:
    """The GCV criterion ``rule`` (see the module docstring) at each λ in ``lam``."""
    res = residual_sq(lam, s, bhat)
    tr = dof(lam, s)
    if rule == "gcv":
        den = len(bhat) - tr
    elif rule == "wgcv":
        den = len(bhat) - omega * tr
    elif rule == "gcv_full":
        if n_samples is None:
            raise ValueError("gcv_full needs n_samples")
        den = n_samples - tr
    else:
        raise ValueError(f"unknown GCV rule {rule!r}; allowed: {', '.join(REGPARAM_RULES)}")
    # The denominator counts the residual's degrees of freedom; on a square, full-rank
    # problem it vanishes at λ = 0 (0/0): no choice there.
    ok = den > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(ok, res / np.where(ok, den, 1.0) ** 2, np.inf)


def adaptive_weight(s: np.ndarray, bhat: np.ndarray) -> float:
    """The ω that makes d(wGCV)/dλ vanish at λ = s_min (Chung, Nagy & O'Leary 2008).

    Writing N(λ) for the residual, D(λ) = p − ω Σ g_i with g_i = s_i²/(s_i²+λ²), the
    stationarity condition N'D = 2ND' solved for ω gives
    ω = p λ² v / (λ² v Σg + N Σ (s_i/(s_i²+λ²))²) with v = Σ (bhat_i s_i)²/(s_i²+λ²)³.
    """
    lam2 = float(s[-1]) ** 2
    s2 = s**2
    tt = 1.0 / (s2 + lam2)
    head = bhat[: len(s)]
    v = float(np.sum((head * s) ** 2 * tt**3))
    n_res = float(np.sum((lam2 * head * tt) ** 2) + np.sum(bhat[len(s):] ** 2))
    sum_g = float(np.sum(s2 * tt))
    sum_d = float(np.sum((s * tt) ** 2))
    den = lam2 * v * sum_g + n_res * sum_d
    return len(bhat) * lam2 * v / den if den > 0 else 1.0


def minimize_gcv(
    s: np.ndarray, bhat: np.ndarray, rule: str, *, omega: float = 1.0,
    n_samples: int | None = None,
) -> float:
    """The λ ∈ [0, s_max] chosen by the GCV criterion ``rule``, found as IR Tools finds it:
    ``fminbnd`` on [0, s₁] with MATLAB's default tolerance (TolX = 1e-4, absolute).

    SciPy's ``fminbound`` is the same algorithm (Brent's golden-section search with
    parabolic steps, Forsythe, Malcolm & Moler's ``fmin``) with the same stopping test, so
    it returns the λ IR Tools returns. It finds *a* local minimum, not necessarily the global
    one: that is what the authors' runs used, so it is what the harness runs (docs/rfm.md
    shows what a global search would change)."""

    def g(lam: float) -> float:
        return float(gcv_value(lam, s, bhat, rule, omega=omega, n_samples=n_samples))

    return float(fminbound(g, 0.0, float(s[0]), xtol=MATLAB_TOLX))
