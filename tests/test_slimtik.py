"""slimTik against dense Tikhonov solutions and a brute-force sGCV minimisation."""

import pytest
import torch
from harness.solvers.separable import SlimTik, trial_points


def _batches(k=6, n_f=9, n_t=3, n_b=5, seed=0):
    gen = torch.Generator().manual_seed(seed)
    W_true = torch.randn(n_t, n_f, generator=gen, dtype=torch.float64)
    out = []
    for _ in range(k):
        Z = torch.randn(n_f, n_b, generator=gen, dtype=torch.float64)
        Z[-1] = 1.0  # the bias row
        out.append((Z, W_true @ Z + 0.1 * torch.randn(n_t, n_b, generator=gen,
                                                      dtype=torch.float64)))
    return out


@pytest.mark.parametrize("lam0", [1e-3, 0.5])
def test_full_memory_constant_is_the_tikhonov_solution_on_all_data_seen(lam0):
    tik = SlimTik(3, 9, memory_depth=None, select="constant", lam_bar=lam0, lam0=lam0)
    Zs, Cs = [], []
    for Z, C in _batches():
        step = tik.update(Z, C)
        beta = Z.shape[1] ** -0.5
        Zs.append(beta * Z)
        Cs.append(beta * C)
        M, Cm = torch.cat(Zs, 1), torch.cat(Cs, 1)
        # W_k (M Mᵀ + Λ̄_k I) = C Mᵀ: Tikhonov on every batch so far (W₀ = 0)
        A = M @ M.T + step.lam_bar * torch.eye(9, dtype=torch.float64)
        W_dense = torch.linalg.solve(A, (Cm @ M.T).T).T
        assert torch.allclose(tik.W, W_dense, rtol=0, atol=1e-8)
        assert step.lam == pytest.approx(lam0)
    assert tik.lam_bar == pytest.approx(lam0 * 7)  # Λ̄₀ + 6 batches × Λ₀


def _dense_sgcv(W, memory, Z, C, lam_bar, lam, total=None):
    n_f = Z.shape[0]
    A = sum(memory) + (lam_bar + lam) * torch.eye(n_f, dtype=torch.float64)
    Ainv = torch.linalg.inv(A)
    W_new = W - ((W @ Z - C) @ Z.T + lam * W) @ Ainv
    trace = C.shape[0] * torch.trace(Z.T @ Ainv @ Z)
    total = C.numel() if total is None else total
    return ((W_new @ Z - C) ** 2).sum() / (total - trace) ** 2, W_new


@pytest.mark.parametrize("lam_bar0, lb", [(0.3, 1e-7), (1e-3, 9e-4)])
def test_sgcv_choice_is_the_brute_force_argmin_then_the_lower_bound(lam_bar0, lb):
    """sGCV is evaluated at the unclamped trial points; only the argmin is then raised so
    that Λ̄ + Λ ≥ lb (the authors' trialPoints/tikParamFctn); no upper bound by default."""
    tik = SlimTik(3, 9, memory_depth=2, select="sgcv", lam_bar=lam_bar0, lb=lb)
    raised = 0
    for Z, C in _batches(k=8, seed=1):
        beta = Z.shape[1] ** -0.5
        Zs, Cs = beta * Z, beta * C
        memory = [*list(tik.memory)[-2:], Zs @ Zs.T]  # depth 2: this batch and two before
        W_old, lam_bar = tik.W.clone(), tik.lam_bar
        lams = trial_points(lam_bar)  # as they are: no clamping before the argmin
        values = [float(_dense_sgcv(W_old, memory, Zs, Cs, lam_bar, lam)[0]) for lam in lams]
        best = min(range(len(values)), key=values.__getitem__)
        expected = max(float(lams[best]), lb - lam_bar)
        raised += expected != float(lams[best])
        step = tik.update(Z, C)
        assert step.lam == pytest.approx(expected, rel=1e-12, abs=1e-300)
        assert step.sgcv == pytest.approx(values[best], rel=1e-8)
        assert step.lam_bar == pytest.approx(max(lam_bar + float(lams[best]), lb), rel=1e-12)
        _, W_dense = _dense_sgcv(W_old, memory, Zs, Cs, lam_bar, step.lam)
        assert torch.allclose(tik.W, W_dense, atol=1e-10)
    if lb > lam_bar0 / 2:  # the bound can bind only when Λ̄/2 < lb
        assert raised > 0


def test_sgcv_samples_denominator_counts_samples_not_columns():
    """An image of P pixels adds P columns to Z; ``denominator: samples`` divides by the
    number of images n_b, as the authors' PyTorch code (n_calTk = images)."""
    P, n_img = 4, 3
    tik = SlimTik(1, 9, memory_depth=0, select="sgcv", lam_bar=0.5, denominator="samples")
    Z, C = _batches(k=1, n_t=1, n_b=P * n_img, seed=2)[0]
    beta = n_img ** -0.5
    Zs, Cs = beta * Z, beta * C
    lams = trial_points(0.5)
    values = [float(_dense_sgcv(tik.W.clone(), [Zs @ Zs.T], Zs, Cs, 0.5, lam, total=n_img)[0])
              for lam in lams]
    step = tik.update(Z, C, n_samples=n_img)
    best = min(range(len(values)), key=values.__getitem__)
    assert step.sgcv == pytest.approx(values[best], rel=1e-8)
    assert step.lam == pytest.approx(float(lams[best]), rel=1e-12)


def test_trial_points_have_both_signs_and_the_paper_range():
    pts = trial_points(2.0)
    assert len(pts) == 60 and (pts < 0).sum() == 30
    assert pts.abs().max().item() == pytest.approx(1.0) and pts.abs().min() == 1e-16


def test_lower_bound_and_none_mode():
    tik = SlimTik(3, 9, memory_depth=0, select="none", lam_bar=0.0, lb=1e-7)
    for Z, C in _batches(k=2):
        step = tik.update(Z, C)  # one batch of 5 columns, 9 features: singular without lb
        assert step.lam_bar == pytest.approx(1e-7) and torch.isfinite(tik.W).all()
