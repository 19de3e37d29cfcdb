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
from scipy.optimize import minimize_scalar

REGPARAM_RULES = ("gcv", "wgcv", "gcv_full")


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
    n_samples: int | None = None, scan_points: int = 64,
) -> float:
    """The λ ∈ [0, s_max] chosen by the GCV criterion ``rule``: its local minimizer with the
    largest λ (the most regularized one).

    GCV can have a second, deeper minimum near λ = 0 once the Krylov space is nearly the
    whole space (m ≈ n): there the fit interpolates a few high-leverage samples and the
    GCV estimate of the error is unreliable; on digits at m = n it picked λ ≈ 0 for one
    class in one seed in three and the test error rose 25-fold. Taking the largest-λ local
    minimum is the usual safeguard; it coincides with the global minimum whenever GCV has
    a single minimum. IR Tools' ``fminbnd`` search finds *a* local minimum; here a
    log-spaced scan over [s_min·1e-4, s_max] plus λ = 0 finds the basins and bounded Brent
    refines the chosen one in log λ."""

    def g(lam: np.ndarray) -> np.ndarray:
        return gcv_value(lam, s, bhat, rule, omega=omega, n_samples=n_samples)

    s_max, s_min = float(s[0]), float(s[-1])
    lo = max(s_min * 1e-4, s_max * 1e-14)
    grid = np.concatenate([[0.0], np.geomspace(lo, s_max, scan_points)])
    values = g(grid)
    last = len(grid) - 1
    minima = [i for i in range(len(grid)) if np.isfinite(values[i])
              and (i == 0 or values[i] <= values[i - 1])
              and (i == last or values[i] < values[i + 1])]
    if not minima:
        return float(grid[int(np.argmin(values))])
    best = max(minima)
    if best == 0:
        return 0.0
    left = np.log(grid[best - 1]) if best > 1 else np.log(lo) - np.log(10.0)
    right = np.log(grid[min(best + 1, last)])
    res = minimize_scalar(
        lambda u: float(g(np.exp(u))), bounds=(left, right), method="bounded",
        options={"xatol": 1e-10},
    )
    return float(np.exp(res.x)) if res.fun <= values[best] else float(grid[best])
