"""The Taylor (derivative) check of a gradient, as in Onken & Ruthotto's ``checkDerivative``.

Along a random unit direction v of all weights, for h = 2⁻¹ … 2⁻ᵏ:

    E0(h) = |J(θ + hv) − J(θ)|            = O(h)   always
    E1(h) = |J(θ + hv) − J(θ) − h ∇J·v|   = O(h²)  only if ∇J is the gradient of J

The slopes of log₂E against log₂h are fitted on the small steps, above the round-off floor.
Disc-Opt (backprop through the solver) shows slope 2; Opt-Disc's adjoint gradient at loose
tolerance is not the gradient of the discrete J, and E1 stalls at slope ≈ 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

FIT_MAX_H = 2.0**-4  # fit the slopes on h ≤ this: the asymptotic range
FLOOR = 100 * np.finfo(np.float64).eps  # relative round-off floor of |J|


@dataclass
class TaylorResult:
    """h, E0(h), E1(h) and the fitted slopes (None when too few points lie above the floor)."""

    h: list[float]
    e0: list[float]
    e1: list[float]
    slope_e0: float | None
    slope_e1: float | None


def fitted_slope(h: Sequence[float], err: Sequence[float], scale: float,
                 eps: float = FLOOR) -> float | None:
    """Least-squares slope of log₂ err against log₂ h over h ≤ 2⁻⁴ and err above the floor
    ``eps · max(scale, 1)``; None with fewer than three such points."""
    floor = eps * max(abs(scale), 1.0)
    pts = [(np.log2(x), np.log2(e)) for x, e in zip(h, err, strict=True)
           if x <= FIT_MAX_H and e > floor]
    if len(pts) < 3:
        return None
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


def taylor_check(loss: Callable[[], torch.Tensor], params: Sequence[torch.Tensor],
                 gradient: Sequence[torch.Tensor] | None = None, k_max: int = 20,
                 seed: int = 0) -> TaylorResult:
    """Run the check for ``loss()`` (a closure over ``params``) at the current weights.

    ``gradient`` is the gradient to test (default: ``loss().backward()`` through whatever
    the closure does, e.g. the adjoint). The weights are restored afterwards."""
    params = list(params)
    if gradient is None:
        for p in params:
            p.grad = None
        J0 = loss()
        J0.backward()
        gradient = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
                    for p in params]
        J0 = float(J0.detach())
    else:
        with torch.no_grad():
            J0 = float(loss())
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p) for p in params]
    norm = torch.sqrt(sum((x.double() ** 2).sum() for x in v))
    v = [x / norm.to(x) for x in v]
    dJ = float(sum((g * x).sum() for g, x in zip(gradient, v, strict=True)))
    saved = [p.detach().clone() for p in params]
    hs, e0, e1 = [], [], []
    try:
        for k in range(1, k_max + 1):
            h = 2.0**-k
            with torch.no_grad():
                for p, p0, x in zip(params, saved, v, strict=True):
                    p.copy_(p0 + h * x)
                Jh = float(loss())
            hs.append(h)
            e0.append(abs(Jh - J0))
            e1.append(abs(Jh - J0 - h * dJ))
    finally:
        with torch.no_grad():
            for p, p0 in zip(params, saved, strict=True):
                p.copy_(p0)
    return TaylorResult(hs, e0, e1, fitted_slope(hs, e0, J0), fitted_slope(hs, e1, J0))
