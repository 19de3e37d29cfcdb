"""Hybrid LSQR: Golub–Kahan bidiagonalization with Tikhonov on the projected problem.

A torch/NumPy re-implementation of IR Tools' ``IRhybrid_lsqr`` as the random-feature paper
uses it: reorthogonalization on, one right-hand side per class, GCV for the regularization
parameter of each projected problem and, optionally, for the stopping iteration. The t
right-hand sides (classes) share the matrix, so they are bidiagonalized together: one
matrix product per step serves every class, while each class keeps its own bidiagonal
matrix, λ and stopping state. The long vectors are torch tensors on the inputs' device; the
projected problems are tiny and solved with NumPy on the CPU.

Scale: λ here minimises ‖Zᵀw − c‖² + λ²‖w‖² (IR Tools' convention); the paper's weight
decay is α = λ/√n (see :func:`harness.solvers.rfm.spectral.tikhonov_filter`).

λ is found as IR Tools finds it (``fminbnd`` on [0, s₁], see :func:`.gcv.minimize_gcv`),
the adaptive ω is averaged as IR Tools averages it (ω₁ = 0 counted) and the logged GCV
stopping values are IR Tools' ``info.GCValues``. Where this differs from IR Tools
(docs/rfm.md says why): breakdown is detected with a relative tolerance and, after a
β-breakdown, the exact k-th iterate is kept; the projected problems are solved at every
iteration only when the stopping rule or the adaptive weight needs them, otherwise only
at the iterates returned or asked for (with no stopping rule, the iterate at k does not
depend on the cap, so one run to the largest cap gives every smaller cap's iterate).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .gcv import REGPARAM_RULES, adaptive_weight, dof, minimize_gcv, residual_sq

STOP_RULES = ("gcv", "none")


@dataclass
class _ClassState:
    """One right-hand side: its bidiagonal matrix and the GCV stopping-rule bookkeeping."""

    beta1: float
    alphas: list[float] = field(default_factory=list)
    betas: list[float] = field(default_factory=list)  # β_2, β_3, …
    exact: bool = False  # β_{k+1} vanished: the last projected problem is square
    omegas: list[float] = field(default_factory=list)
    trace: dict[int, tuple[float, float, float]] = field(default_factory=dict)  # k → λ, res, GCV
    solutions: dict[int, np.ndarray] = field(default_factory=dict)  # k → y_k, when computed
    warning_at: int | None = None  # IR Tools' k_save
    stop_at: int | None = None
    reason: str = ""

    @property
    def active(self) -> bool:
        return self.stop_at is None


@dataclass
class HybridResult:
    """Output of :func:`hybrid_lsqr`; per-class arrays have one entry per row of C."""

    W: torch.Tensor  # t × m weights: each class's returned iterate
    lam: np.ndarray  # λ of each class at its returned iterate (IR Tools' scale)
    n_iter: np.ndarray  # the returned iterate of each class
    reasons: list[str]  # why each class stopped
    trace: list[dict[int, tuple[float, float, float]]]  # per class: k → (λ_k, ‖r_k‖², GCV_k)
    _states: list[_ClassState]
    _basis: _Basis
    _regparam: str | float
    _like: torch.Tensor

    def iterate(self, k: int) -> torch.Tensor:
        """The t × m weights after k iterations (a class that stopped before k contributes
        its returned iterate); adds the projected solutions it computes to ``trace``."""
        n = self._like.shape[1]
        return _weights(self._states, self._basis, self._regparam, n, self.W.shape[1],
                        at=k, like=self._like)


def _bidiagonal(st: _ClassState, k: int) -> np.ndarray:
    """B_k: (k+1)×k lower bidiagonal, or k×k when β_{k+1} vanished."""
    B = np.zeros((k + 1, k))
    idx = np.arange(k)
    B[idx, idx] = st.alphas[:k]
    B[idx + 1, idx] = st.betas[:k]
    return B[:k] if (st.exact and k == len(st.alphas)) else B


def _solve_projected(
    st: _ClassState, k: int, regparam: str | float, n: int, m: int
) -> tuple[float, float, float, np.ndarray]:
    """λ_k, the squared residual, IR Tools' GCV stopping value and y_k at iteration k."""
    P, s, Qt = np.linalg.svd(_bidiagonal(st, k), full_matrices=True)
    bhat = st.beta1 * P[0, :]
    if not isinstance(regparam, str):
        lam = float(regparam)
    elif regparam == "wgcv":
        # The adaptive weight: IR Tools never estimates ω at k = 1 (there λ = 0 and the
        # stopping value is 0), yet its running mean counts that iteration as ω₁ = 0:
        # ω_k = mean(Omega(1:k)) with Omega(1) = 0.
        if len(st.omegas) < k:
            st.omegas.append(0.0 if k == 1 else min(1.0, adaptive_weight(s, bhat)))
        omega = float(np.mean(st.omegas[:k]))
        lam = 0.0 if k == 1 else minimize_gcv(s, bhat, "wgcv", omega=omega)
    else:
        lam = minimize_gcv(s, bhat, regparam, n_samples=n)
    res = float(residual_sq(lam, s, bhat))
    # GCVstopfun with IR Tools' A = Zᵀ (n samples × m features):
    # (‖r‖²/m) / ((n − dof)/m)², so logged values equal IR Tools' info.GCValues.
    free = (n - float(dof(lam, s))) / m
    stop_value = 0.0 if (regparam == "wgcv" and k == 1) else (
        (res / m) / free**2 if free > 0 else np.inf
    )
    y = Qt.T @ (s * bhat[: len(s)] / (s**2 + lam**2))
    return lam, res, stop_value, y


def _check_gcv_stop(st: _ClassState, k: int, flat_tol: float, window: int) -> None:
    """IR Tools' 'GCVvalues' rule after iteration k: stop when the GCV stopping function is
    flat, or when it rose at k_save and stayed above GCV(k_save) for ``window`` iterations
    (then iterate k_save is returned, as IR Tools does)."""
    if k < 2:
        return
    g = {j: v[2] for j, v in st.trace.items()}
    ref = g[2] if g[2] != 0 else 1.0
    if abs(g[k] - g[k - 1]) / abs(ref) < flat_tol:
        st.stop_at, st.reason = k, "gcv_flat"
    elif st.warning_at is None and g[k - 1] < g[k]:
        st.warning_at = k
    elif st.warning_at is not None and k > st.warning_at + window:
        ks = st.warning_at
        if all(g[ks] < g[j] for j in range(ks + 1, ks + window + 1)):
            st.stop_at, st.reason = ks, "gcv_min"
        else:
            st.warning_at = None


def _orthogonalize(w, basis, k: int) -> None:
    """Remove in place from each class's vector (row j of ``w``) its components along the
    first k vectors of that class's basis (``basis[j, :k]``). Classical Gram–Schmidt with
    a second pass when the first one cancelled much of the norm ("twice is enough").

    Works on NumPy arrays (CPU: its BLAS matrix–vector products are several times faster
    than torch's for float64) and on torch tensors (GPU) alike."""
    if k == 0:
        return
    for j in range(w.shape[0]):
        Q = basis[j, :k]
        before = float((w[j] * w[j]).sum()) ** 0.5
        for _ in range(2):
            w[j] -= (Q @ w[j]) @ Q
            after = float((w[j] * w[j]).sum()) ** 0.5
            if after > 0.7 * before:
                break
            before = after


class _Basis:
    """Per-class orthonormal vectors (t × j × d) in a buffer that grows on demand, so
    memory follows the iterations actually run."""

    def __init__(self, empty, t: int, d: int, capacity: int = 32):
        self.empty = empty
        self.buf = empty((t, capacity, d))
        self.size = 0

    def append(self, rows) -> None:
        if self.size == self.buf.shape[1]:
            grown = self.empty((self.buf.shape[0], 2 * self.size, self.buf.shape[2]))
            grown[:, : self.size] = self.buf
            self.buf = grown
        self.buf[:, self.size] = rows
        self.size += 1


def hybrid_lsqr(
    Z: torch.Tensor,
    C: torch.Tensor,
    *,
    regparam: str | float = "gcv_full",
    stop: str = "none",
    max_iter: int | None = None,
    flat_tol: float = 1e-6,
    window: int = 3,
    arrays: str = "auto",
) -> HybridResult:
    """Hybrid-regularized least squares ``W Z ≈ C`` with one Krylov space per row of C.

    Args:
        Z: features, m × n (float64, any device).
        C: targets, t × n.
        regparam: ``"gcv"``, ``"wgcv"`` (adaptive weight), ``"gcv_full"`` or a fixed λ ≥ 0
            (see :mod:`harness.solvers.rfm.gcv`). The defaults are the measured best on the paper's
            problem (docs/rfm.md).
        stop: ``"gcv"`` (IR Tools' GCV stopping rule) or ``"none"`` (run to ``max_iter``).
        max_iter: iteration cap, default min(m, n): the full Krylov space.
        flat_tol, window: the stopping rule's flatness tolerance and window (IR Tools'
            ``GCVflatTol`` and ``GCVminTol``).
        arrays: where the long vectors live: ``"auto"`` (NumPy for CPU inputs, torch on
            the inputs' device otherwise) or ``"torch"`` (always torch; lets the CPU test
            suite exercise the code path GPUs take).

    No test or validation data is used.
    """
    if isinstance(regparam, str) and regparam not in REGPARAM_RULES:
        raise ValueError(f"regparam {regparam!r}; allowed: {', '.join(REGPARAM_RULES)} or λ ≥ 0")
    if not isinstance(regparam, str) and regparam < 0:
        raise ValueError(f"regparam {regparam!r}: a fixed λ must be ≥ 0")
    if stop not in STOP_RULES:
        raise ValueError(f"stop {stop!r}; allowed: {', '.join(STOP_RULES)}")
    if arrays not in ("auto", "torch"):
        raise ValueError(f"arrays {arrays!r}; allowed: auto, torch")
    m, n = Z.shape
    t = C.shape[0]
    K = min(m, n) if max_iter is None else max(1, min(max_iter, m, n))
    every_step = stop == "gcv" or regparam == "wgcv"
    tiny = float(torch.finfo(Z.dtype).tiny)
    states = [_ClassState(beta1=float(b)) for b in torch.linalg.vector_norm(C, dim=1)]
    for st in states:  # a class absent from the data: the zero solution, nothing to iterate
        if st.beta1 == 0.0:
            st.stop_at, st.reason = 0, "zero_rhs"
    # The long vectors live in NumPy on the CPU and in torch elsewhere (see _orthogonalize).
    on_cpu = Z.device.type == "cpu" and arrays == "auto"
    Zx, Cx = (Z.numpy(), C.numpy()) if on_cpu else (Z, C)

    def empty(shape):
        return np.empty(shape) if on_cpu else torch.empty(shape, dtype=Z.dtype, device=Z.device)

    def row_norms(x):
        return (x * x).sum(axis=1) ** 0.5

    def host(x) -> np.ndarray:
        return x if on_cpu else x.cpu().numpy()

    V_basis, U_basis = _Basis(empty, t, m), _Basis(empty, t, n)
    b1 = np.array([st.beta1 for st in states])
    u = Cx / (b1 if on_cpu else torch.as_tensor(b1, dtype=Z.dtype, device=Z.device)).clip(
        min=tiny
    )[:, None]  # rows: one unit vector per class
    U_basis.append(u)
    v = empty((t, m))
    v[:] = 0.0
    beta = 0.0 * row_norms(u)
    scale, eps = 0.0, float(torch.finfo(Z.dtype).eps)
    for k in range(1, K + 1):
        # With A = Zᵀ: Aᵀu = Zu and Av = Zᵀv; as rows, (Zu)ᵀ = uZᵀ and (Zᵀv)ᵀ = vZ.
        w = u @ Zx.T - beta[:, None] * v
        _orthogonalize(w, V_basis.buf, V_basis.size)
        alpha = row_norms(w)
        v = w / alpha.clip(min=tiny)[:, None]
        V_basis.append(v)
        p = v @ Zx - alpha[:, None] * u
        _orthogonalize(p, U_basis.buf, U_basis.size)
        beta = row_norms(p)
        u = p / beta.clip(min=tiny)[:, None]
        U_basis.append(u)
        a_np, b_np = host(alpha), host(beta)
        scale = max(scale, float(a_np.max()), float(b_np.max()))
        tol = max(m, n) * eps * scale
        for j, st in enumerate(states):
            if not st.active:
                continue
            if a_np[j] <= tol:  # the Krylov space was exhausted: iterate k − 1 is exact
                st.stop_at, st.reason = k - 1, "breakdown"
                continue
            st.alphas.append(float(a_np[j]))
            st.betas.append(float(b_np[j]))
            st.exact = bool(b_np[j] <= tol)
            if every_step:
                st.trace[k] = _solve_projected(st, k, regparam, n, m)[:3]
            if st.exact:
                st.stop_at, st.reason = k, "breakdown"
            elif stop == "gcv":
                _check_gcv_stop(st, k, flat_tol, window)
            if st.active and k == K:
                st.stop_at, st.reason = k, "max_iter"
        if not any(st.active for st in states):
            break
    W = _weights(states, V_basis, regparam, n, m, at=None, like=Z)
    return HybridResult(
        W=W,
        lam=np.array([st.trace[st.stop_at][0] if st.stop_at else 0.0 for st in states]),
        n_iter=np.array([st.stop_at for st in states]),
        reasons=[st.reason for st in states],
        trace=[st.trace for st in states],
        _states=states, _basis=V_basis, _regparam=regparam, _like=Z,
    )


def _weights(
    states: list[_ClassState], V: _Basis, regparam: str | float, n: int, m: int,
    at: int | None, like: torch.Tensor,
) -> torch.Tensor:
    """Row j is y_jᵀ V_j[:k_j] with k_j the class's returned iterate (``at`` = None) or
    min(at, its returned iterate); solves (and traces) the projected problems it needs.
    Returned as a torch tensor on ``like``'s device."""
    W = torch.zeros((len(states), m), dtype=like.dtype, device=like.device)
    for j, st in enumerate(states):
        kj = st.stop_at if st.stop_at is not None and (at is None or st.stop_at < at) else at
        if not kj:
            continue
        if kj not in st.solutions:
            lam, res, gcv, st.solutions[kj] = _solve_projected(st, kj, regparam, n, m)
            st.trace.setdefault(kj, (lam, res, gcv))
        y = st.solutions[kj]
        row = y @ V.buf[j, :kj] if isinstance(V.buf, np.ndarray) else (
            torch.as_tensor(y, dtype=like.dtype, device=like.device) @ V.buf[j, :kj]
        )
        W[j] = torch.as_tensor(row, dtype=like.dtype, device=like.device)
    return W
