"""slimTik: the sampled limited-memory Tikhonov update of a final linear layer
(Newman, Chung, Chung & Ruthotto, SISC 2022; docs/papers.md).

The linear layer W (targets × features) maps a feature matrix Z (features × observations,
the bias row of ones included by the caller) to predictions W Z. Per batch, with
β = 1/√n_b, Z ← βZ_k, C ← βC_k, and M the last r + 1 scaled batches of features:

    W(Λ) = W_{k−1} − (R Zᵀ + Λ W_{k−1}) (M Mᵀ + (Λ̄_{k−1} + Λ) I)⁻¹,   R = W_{k−1} Z − C

and Λ̄_k = Λ̄_{k−1} + Λ. The memory holds only the Gram matrices Z Zᵀ of its batches
(features × features), so an autoencoder's per-pixel features cost no more than a dense
layer's. With every batch kept and W₀ = 0, W_k is the Tikhonov solution on all data seen:
W_k (M Mᵀ + Λ̄_k I) = C Mᵀ (a test checks it to 1e-8).

Λ per batch (``select``): ``sgcv`` minimises the sampled GCV function

    sGCV(Λ) = ‖W(Λ) Z − C‖²_F / (N − n_t · tr(Zᵀ (M Mᵀ + (Λ̄ + Λ) I)⁻¹ Z))²

(N = n_t · n_b scalar observations, the MATLAB code's normalisation; the authors' PyTorch
code uses the number of samples n_b instead, ``denominator="samples"`` — for the
autoencoder n_b counts images, not the 784 pixel columns each image adds to Z) over trial
points, evaluated as they are; the argmin is taken, and only then is Λ raised so that
Λ̄ + Λ ≥ lb (the authors' ``trialPoints``/``tikParamFctn`` and ``solve`` alike). Two
sources, two candidate rules (``trials``):

* ``matlab`` — the paper's MATLAB ``trialPoints``: 30 log-spaced magnitudes from 1e-16 to
  Λ̄/2 with both signs, so Λ̄ may shrink and grows at most ×1.5 per batch. MATLAB compares
  log10(Λ̄/2) with a linear upper bound, so its bound never acts; here ``ub``, when given,
  caps Λ̄ + Λ (a harness option, off by default).
* ``pytorch`` — the authors' PyTorch ``solve`` (the autoencoder): −logspace(eps, Λ̄, 30)
  and logspace(eps, ub, 30), eps of the solve's dtype — float32 in the autoencoder, so
  eps = 1.19e-7 by default (``trial_eps``) — built in float32 as there (``torch.logspace``
  without a dtype); ``ub`` is the largest positive candidate, and Λ̄ + Λ is not capped.

Two guards neither source has: a candidate whose sGCV is not finite, or whose per-target
trace tr(Zᵀ(M Mᵀ + (Λ̄ + Λ) I)⁻¹ Z) lies outside [0, p] (p features: impossible for a
positive semi-definite system, so only round-off under a singular memory Gram gets there),
is never chosen. The sign of the denominator is *not* guarded: with ``samples`` and
n_b < p it is negative at every small Λ̄ + Λ (the autoencoder), and both sources then
minimise on that branch; :class:`SlimTikStep` records the denominator so that a report can
count those batches.

``constant`` adds Λ₀ every batch; ``none`` adds 0 (the same bounds apply).

Deliberate departures from the PyTorch code: each stored Gram keeps its own batch's
β² = 1/n_b (the PyTorch code scales the whole memory by the *current* batch's β², which
differs only after a partial batch), and the update runs in float64 (the autoencoder's
solve runs in float32).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import torch

SELECT = ("sgcv", "constant", "none")
DENOMINATORS = ("observations", "samples")
TRIALS = ("matlab", "pytorch")
# The autoencoder's PyTorch solve runs in float32, so its candidates start at float32's eps.
PYTORCH_EPS = float(torch.finfo(torch.float32).eps)
N_TRIALS = 30
SMALLEST_TRIAL = 1e-16


@dataclass
class SlimTikStep:
    """What one update chose: Λ, the new Λ̄, and for sgcv the sGCV value, the trace term
    n_t · tr(Zᵀ(M Mᵀ + (Λ̄ + Λ) I)⁻¹ Z) and the denominator's base (first term − trace) at
    the chosen trial point (None otherwise); ``free`` ≤ 0 means sGCV was minimised on its
    wrong branch."""

    lam: float
    lam_bar: float
    sgcv: float | None
    trace: float | None = None
    free: float | None = None


def pytorch_trial_points(lam_bar: float, ub: float, eps: float, n: int = N_TRIALS
                         ) -> torch.Tensor:
    """The authors' PyTorch candidates: −logspace(eps, Λ̄, n) then logspace(eps, ub, n),
    built in float32 as their ``choose_Lambda_candidates`` builds them (float64 out)."""
    lo = math.log10(eps)
    neg = torch.logspace(lo, math.log10(lam_bar), n, dtype=torch.float32)
    pos = torch.logspace(lo, math.log10(ub), n, dtype=torch.float32)
    return torch.cat([-neg, pos]).to(torch.float64)


def pytorch_rule_gap(select: str, ub: float | None, lam_bar: float
                     ) -> tuple[str, str] | None:
    """What the PyTorch rule lacks to build its candidates under sGCV, as (the parameter,
    why), or None: ub is its largest candidate, and −Λ̄ its most negative (log-spaced)."""
    if select != "sgcv":
        return None
    if ub is None:
        return "ub", ("trials: pytorch needs ub, the largest positive trial point (the "
                      "authors' autoencoder runs use 10)")
    if lam_bar <= 0:
        return "lam0", ("trials: pytorch needs lam0 > 0: its most negative trial point is "
                        "−Λ̄, log-spaced from eps")
    return None


def trial_points(lam_bar: float, n: int = N_TRIALS) -> torch.Tensor:
    """The paper's MATLAB candidates: ±logspace(1e-16, Λ̄/2, n) (2n values, float64); only the
    positive half when Λ̄/2 ≤ 1e-16."""
    top = lam_bar / 2
    if top <= SMALLEST_TRIAL:
        return torch.logspace(-16, -16, 1, dtype=torch.float64)
    mags = torch.logspace(-16, torch.log10(torch.tensor(top, dtype=torch.float64)).item(), n,
                          dtype=torch.float64)
    mags[0], mags[-1] = SMALLEST_TRIAL, top  # exact ends: no round-off past Λ̄/2
    return torch.cat([-mags.flip(0), mags])


class SlimTik:
    """The slimTik state: W, Λ̄ and the memory of the last ``memory_depth`` + 1 batches
    (``None``: keep every batch). ``update(Z, C)`` applies one step and returns it."""

    def __init__(self, n_targets: int, n_features: int, *, memory_depth: int | None = 5,
                 select: str = "sgcv", lam_bar: float = 1e-10, lam0: float | None = None,
                 lb: float = 1e-7, ub: float | None = None,
                 denominator: str = "observations", trials: str = "matlab",
                 trial_eps: float = PYTORCH_EPS,
                 dtype: torch.dtype = torch.float64, device: torch.device | str = "cpu"):
        if select not in SELECT:
            raise ValueError(f"select must be one of {SELECT}, not {select!r}")
        if denominator not in DENOMINATORS:
            raise ValueError(f"denominator must be one of {DENOMINATORS}")
        if trials not in TRIALS:
            raise ValueError(f"trials must be one of {TRIALS}, not {trials!r}")
        gap = pytorch_rule_gap(select, ub, lam_bar) if trials == "pytorch" else None
        if gap is not None:
            raise ValueError(gap[1])
        self.trials, self.trial_eps = trials, trial_eps
        self.W = torch.zeros(n_targets, n_features, dtype=dtype, device=device)
        self.lam_bar, self.lam0 = float(lam_bar), float(lam_bar if lam0 is None else lam0)
        self.select, self.lb, self.ub, self.denominator = select, lb, ub, denominator
        self.memory: deque[torch.Tensor] = deque(
            maxlen=None if memory_depth is None else memory_depth + 1)

    def update(self, Z: torch.Tensor, C: torch.Tensor, beta: float | None = None,
               n_samples: int | None = None) -> SlimTikStep:
        """One slimTik step on features Z (features × columns) and targets C (targets ×
        columns). ``n_samples`` is the number of samples n_b in the batch (default: the
        columns; an autoencoder image contributes one column per pixel); ``beta`` defaults
        to 1/√n_b."""
        Z, C = Z.to(self.W), C.to(self.W)
        n_b = Z.shape[1] if n_samples is None else n_samples
        beta = n_b ** -0.5 if beta is None else beta
        Z, C = beta * Z, beta * C
        self.memory.append(Z @ Z.T)
        gram = torch.stack(tuple(self.memory)).sum(0)
        s2, U = torch.linalg.eigh(gram)
        s2 = s2.clamp_min(0)
        R = self.W @ Z - C
        RZ = R @ Z.T
        value = trace = free = None
        if self.select == "sgcv":
            lams = (pytorch_trial_points(self.lam_bar, self.ub, self.trial_eps)
                    if self.trials == "pytorch" else trial_points(self.lam_bar)).to(Z)
            # W(Λ)Z − C = R − a(Λ) V with a = (P + ΛQ) D(Λ), V = UᵀZ: only Gram-sized
            # products are needed, never a trial × observations array.
            P, Q = RZ @ U, self.W @ U
            VV = U.T @ self.memory[-1] @ U
            scores, traces, first = sgcv_terms(lams, self.lam_bar, s2, float((R**2).sum()), P,
                                               Q, VV, C.shape[0], Z.shape[1],
                                               self.denominator, n_b)
            best = best_candidate(scores, traces, C.shape[0], Z.shape[0])
            if best is not None:
                lam, value = float(lams[best]), float(scores[best])
                trace = float(traces[best])
                free = first - trace
            else:  # every candidate impossible: keep Λ̄ (Λ = 0 before the bounds)
                lam = 0.0
        else:
            lam = self.lam0 if self.select == "constant" else 0.0
        lam = self.bounded(lam)
        mu = self.lam_bar + lam
        self.W = self.W - ((RZ + lam * self.W) @ U / (s2 + mu)) @ U.T
        self.lam_bar = mu
        return SlimTikStep(lam, mu, value, trace, free)

    def bounded(self, lam: float) -> float:
        """Λ moved so that Λ̄ + Λ ≥ lb (and, for the MATLAB rule, ≤ ub when an upper bound
        is set; under the PyTorch rule ub bounds the candidates instead)."""
        if self.ub is not None and self.trials == "matlab":
            lam = min(lam, self.ub - self.lam_bar)
        return max(lam, self.lb - self.lam_bar)


def best_candidate(scores: torch.Tensor, traces: torch.Tensor, n_targets: int,
                   n_features: int) -> int | None:
    """The index of the smallest sGCV value among the possible candidates: finite, with a
    per-target trace in [0, n_features] (a positive semi-definite system's range; outside
    it only round-off under a singular memory Gram). None when no candidate is possible.
    (``torch.argmin`` alone would return a NaN's index.)"""
    per_target = traces / n_targets
    valid = torch.isfinite(scores) & (per_target >= 0) & (per_target <= n_features)
    if not bool(valid.any()):
        return None
    return int(torch.argmin(torch.where(valid, scores, torch.inf)))


def sgcv_terms(lams: torch.Tensor, lam_bar: float, s2: torch.Tensor, RR: float,
               P: torch.Tensor, Q: torch.Tensor, VV: torch.Tensor, n_targets: int,
               n_columns: int, denominator: str = "observations",
               n_samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor, float]:
    """(sGCV, the trace term, the denominator's first term) at each Λ in ``lams``, from the
    eigen-decomposition M Mᵀ = U diag(s2) Uᵀ and RR = ‖R‖², P = R Zᵀ U, Q = W U,
    VV = Uᵀ Z Zᵀ U (see :class:`SlimTik`), with V = UᵀZ:
    ‖R − aV‖² = ‖R‖² − 2⟨a, R Vᵀ⟩ + Σ_t a_t VV a_tᵀ, R Vᵀ = P, a = (P + ΛQ) D(Λ).

    The first term of the denominator is the scalar observations n_t · n_columns
    (``observations``) or the samples ``n_samples`` (default n_columns; ``samples``)."""
    D = 1.0 / (s2[None, :] + (lam_bar + lams)[:, None])           # trials × features
    a = (P[None] + lams[:, None, None] * Q[None]) * D[:, None, :]  # trials × targets × f
    num = RR - 2 * torch.einsum("ktf,tf->k", a, P) + torch.einsum("ktf,fg,ktg->k", a, VV, a)
    trace = n_targets * (D * torch.diagonal(VV)[None, :]).sum(1)
    total = (n_columns * n_targets if denominator == "observations"
             else n_columns if n_samples is None else n_samples)
    return num.clamp_min(0) / (total - trace) ** 2, trace, float(total)
