"""The random-feature solvers against independent dense references (NumPy/SciPy)."""

import numpy as np
import pytest
import scipy.linalg
import torch
from harness.solvers.rfm import (
    adaptive_weight,
    gcv_value,
    gradient_flow,
    hybrid_lsqr,
    min_norm,
    minimize_gcv,
    tikhonov,
)
from harness.solvers.rfm.hybrid import _check_gcv_stop, _ClassState

SHAPES = [(30, 80), (80, 30), (50, 50)]  # m < n, m > n, m = n


def problem(m, n, t=3, seed=0):
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((m, n))
    C = rng.standard_normal((t, n))
    return torch.as_tensor(Z), torch.as_tensor(C), Z, C


@pytest.mark.parametrize("m,n", SHAPES)
def test_min_norm_equals_pseudo_inverse(m, n):
    Z, C, Zn, Cn = problem(m, n)
    W = min_norm(Z, C).numpy()
    np.testing.assert_allclose(W, Cn @ np.linalg.pinv(Zn), atol=1e-10)


def test_min_norm_on_rank_deficient_features():
    rng = np.random.default_rng(1)
    Zn = rng.standard_normal((40, 5)) @ rng.standard_normal((5, 60))  # rank 5
    Cn = rng.standard_normal((2, 60))
    W = min_norm(torch.as_tensor(Zn), torch.as_tensor(Cn)).numpy()
    np.testing.assert_allclose(W, Cn @ np.linalg.pinv(Zn, rcond=1e-10), atol=1e-9)


@pytest.mark.parametrize("m,n", SHAPES)
def test_tikhonov_equals_normal_equations(m, n):
    Z, C, Zn, Cn = problem(m, n)
    alpha = 0.3
    W = tikhonov(Z, C, alpha).numpy()
    # argmin (1/2n)‖WZ − C‖² + (α²/2)‖W‖²  ⇔  W (Z Zᵀ + n α² I) = C Zᵀ
    ref = scipy.linalg.solve(Zn @ Zn.T + n * alpha**2 * np.eye(m), Zn @ Cn.T, assume_a="pos").T
    np.testing.assert_allclose(W, ref, atol=1e-10)


def test_gradient_flow_matches_gradient_descent_in_the_small_step_limit():
    m, n = 20, 40
    Z, C, Zn, Cn = problem(m, n, seed=2)
    t = 50.0
    W_flow = gradient_flow(Z, C, t).numpy()

    def descent(steps):
        # explicit gradient descent on (1/(2mn))‖WZ − C‖² from W = 0, total time t
        eta, W = t / steps, np.zeros((3, m))
        for _ in range(steps):
            W -= eta * (W @ Zn - Cn) @ Zn.T / (m * n)
        return W

    errors = [np.abs(descent(s) - W_flow).max() for s in (200, 400, 800, 1600)]
    assert errors[-1] < 1e-3
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    np.testing.assert_allclose(orders, 1.0, atol=0.05)  # Euler: first order in the step


@pytest.mark.parametrize("m,n", SHAPES)
@pytest.mark.parametrize("lam", [0.0, 0.7])
def test_hybrid_at_full_rank_equals_dense_tikhonov(m, n, lam):
    Z, C, Zn, Cn = problem(m, n, seed=3)
    res = hybrid_lsqr(Z, C, regparam=lam, stop="none")
    if lam == 0.0:
        ref = Cn @ np.linalg.pinv(Zn)
    else:  # argmin ‖Zᵀw − c‖² + λ²‖w‖² per row
        ref = scipy.linalg.solve(Zn @ Zn.T + lam**2 * np.eye(m), Zn @ Cn.T, assume_a="pos").T
    np.testing.assert_allclose(res.W.numpy(), ref, atol=1e-8)
    assert (res.n_iter == min(m, n)).all()


def test_hybrid_bases_are_orthonormal():
    Z, C, _, _ = problem(60, 90, seed=4)
    res = hybrid_lsqr(Z, C, regparam=0.1, stop="none", max_iter=40)
    for j in range(3):
        V = res._basis.buf[j, : res._basis.size]
        np.testing.assert_allclose(V @ V.T, np.eye(V.shape[0]), atol=1e-12)


def test_hybrid_gcv_full_at_full_krylov_space_is_dense_gcv_tikhonov():
    """With the whole Krylov space, λ from gcv_full is the GCV choice of the full problem,
    computed here independently from the dense SVD of Zᵀ on a fine grid."""
    m, n = 40, 70
    Z, C, Zn, Cn = problem(m, n, seed=5)
    res = hybrid_lsqr(Z, C, regparam="gcv_full", stop="none")
    U, s, _ = np.linalg.svd(Zn.T, full_matrices=False)
    for j in range(Cn.shape[0]):
        c = Cn[j]
        coef = U.T @ c
        tail = c @ c - coef @ coef
        lams = np.geomspace(1e-3, s[0], 20001)
        f = lams[:, None] ** 2 / (s**2 + lams[:, None] ** 2)
        gcv = ((f * coef) ** 2).sum(1) + tail
        gcv /= (n - (1 - f).sum(1)) ** 2
        best = lams[np.argmin(gcv)]
        assert res.lam[j] == pytest.approx(best, rel=2e-3)


def _random_projected(k, seed, exact=False):
    rng = np.random.default_rng(seed)
    s = np.sort(rng.uniform(0.05, 5.0, k))[::-1] * np.geomspace(1, 1e-3, k)
    bhat = rng.standard_normal(k if exact else k + 1) * np.r_[np.geomspace(3, 0.1, k),
                                                              [] if exact else [0.05]]
    return s, bhat


@pytest.mark.parametrize("rule", ["gcv", "wgcv", "gcv_full"])
@pytest.mark.parametrize("seed", range(6))
def test_gcv_minimiser_is_a_local_minimiser_within_fminbnds_tolerance(rule, seed):
    """IR Tools' fminbnd promises a local minimiser of GCV on [0, s₁] to TolX = 1e-4: the λ
    returned lies within that tolerance of a local minimum of the densely sampled curve,
    (absolute: for a small λ the curve may fall further within it)."""
    s, bhat = _random_projected(12, seed)
    kw = {"omega": 0.6} if rule == "wgcv" else {"n_samples": 200} if rule == "gcv_full" else {}
    lam = minimize_gcv(s, bhat, rule, **kw)
    assert 0.0 <= lam <= s[0]
    grid = np.concatenate([[0.0], np.linspace(0.0, s[0], 400001)[1:]])
    values = gcv_value(grid, s, bhat, rule, **kw)
    interior = (values[1:-1] <= values[:-2]) & (values[1:-1] < values[2:])
    local = grid[np.flatnonzero(interior) + 1]
    if values[-1] < values[-2]:
        local = np.r_[local, grid[-1]]
    if values[0] <= values[1]:  # a minimum at the bound λ = 0
        local = np.r_[local, 0.0]
    tol = 2 * (np.sqrt(np.finfo(float).eps) * lam + 1e-4 / 3) + 2 * (grid[2] - grid[1])
    assert np.min(np.abs(local - lam)) <= tol


def test_gcv_minimiser_is_the_global_minimum_when_gcv_is_unimodal():
    s = np.geomspace(10, 0.01, 15)
    bhat = np.r_[np.geomspace(5, 0.5, 15), [0.3]]
    lam = minimize_gcv(s, bhat, "gcv")
    grid = np.geomspace(1e-6, 10, 400001)
    values = gcv_value(grid, s, bhat, "gcv")
    assert np.count_nonzero((values[1:-1] < values[:-2]) & (values[1:-1] < values[2:])) == 1
    assert lam == pytest.approx(grid[np.argmin(values)], abs=1e-4)  # fminbnd's TolX


def test_adaptive_weight_makes_wgcv_stationary_at_the_smallest_singular_value():
    s, bhat = _random_projected(10, 7)
    omega = adaptive_weight(s, bhat)
    lam, h = s[-1], s[-1] * 1e-6
    d = (gcv_value(np.array([lam + h]), s, bhat, "wgcv", omega=omega)
         - gcv_value(np.array([lam - h]), s, bhat, "wgcv", omega=omega)) / (2 * h)
    scale = gcv_value(np.array([lam]), s, bhat, "wgcv", omega=omega)[0] / lam
    assert abs(d[0]) < 1e-6 * scale


def _stop_on(values, window=3):
    st = _ClassState(beta1=1.0)
    for k, g in enumerate(values, start=1):
        st.trace[k] = (0.0, 0.0, g)
        _check_gcv_stop(st, k, 1e-6, window)
        if st.stop_at is not None:
            return st.stop_at, st.reason, k
    return None, "", len(values)


def test_gcv_stopping_rule_returns_the_iterate_where_gcv_first_rose():
    # GCV falls, rises at k = 5 and stays above GCV(5) for the window → iterate 5 at k = 9
    assert _stop_on([9, 7, 5, 4, 4.5, 4.8, 5, 6, 7, 8]) == (5, "gcv_min", 9)


def test_gcv_stopping_rule_resets_when_gcv_falls_again():
    stop, reason, _ = _stop_on([9, 7, 5, 4, 4.5, 4.2, 3, 2, 1.5, 1.4, 1.45, 1.5, 1.6, 1.7, 1.8])
    assert (stop, reason) == (11, "gcv_min")


def test_gcv_stopping_rule_stops_on_a_flat_curve():
    assert _stop_on([3, 2, 1.0, 1.0 + 1e-9]) == (4, "gcv_flat", 4)


def test_hybrid_with_gcv_stopping_stops_early_and_runs_on_any_rule():
    Z, C, _, _ = problem(60, 120, seed=8)
    for rule in ("gcv", "wgcv", "gcv_full"):
        res = hybrid_lsqr(Z, C, regparam=rule, stop="gcv")
        assert res.W.shape == (3, 60)
        assert np.isfinite(res.W.numpy()).all()
        assert all(r in ("gcv_min", "gcv_flat", "max_iter", "breakdown") for r in res.reasons)


def test_hybrid_zero_target_row_gives_zero_weights():
    Z, C, _, _ = problem(20, 30, seed=9)
    C[1] = 0.0
    res = hybrid_lsqr(Z, C)
    assert torch.count_nonzero(res.W[1]) == 0 and res.reasons[1] == "zero_rhs"


def test_torch_array_path_equals_numpy_path():
    """The torch code path (what runs on a GPU) gives the NumPy path's answer."""
    Z, C, _, _ = problem(70, 50, seed=10)
    for rule, stop in (("gcv_full", "none"), ("wgcv", "gcv")):
        a = hybrid_lsqr(Z, C, regparam=rule, stop=stop)
        b = hybrid_lsqr(Z, C, regparam=rule, stop=stop, arrays="torch")
        np.testing.assert_array_equal(a.n_iter, b.n_iter)
        torch.testing.assert_close(a.W, b.W, rtol=1e-6, atol=1e-8)  # rounding only
        torch.testing.assert_close(a.iterate(5), b.iterate(5), rtol=1e-6, atol=1e-8)
