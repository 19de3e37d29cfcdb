"""CNF pieces against dense and analytic references, the toy densities, and the inverse
error of trained flows under re-discretization."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from harness.problems.datasets.toy2d import GENERATORS, sample_toy
from harness.solvers.node import FixedStepRK4, reference_solver
from harness.solvers.node.cnf import CNF, CNFDynamics, ODEnet, standard_normal_logpdf
from torch import nn

from harness.runner import run_cell
from tests.test_node_solvers import node_cell


def _net(dim=3):
    torch.manual_seed(0)
    return ODEnet(dim, [16, 16], "tanh").double()


def test_exact_divergence_equals_the_dense_jacobian_trace():
    net = _net()
    dyn = CNFDynamics(net, "exact")
    z = torch.randn(5, 3, dtype=torch.float64)
    t = torch.tensor(0.3, dtype=torch.float64)
    out = dyn(t, torch.cat([z, torch.zeros(5, 1, dtype=torch.float64)], 1))
    for i in range(5):
        J = torch.autograd.functional.jacobian(lambda v: net(t, v[None])[0], z[i])
        assert out[i, -1].item() == pytest.approx(-torch.trace(J).item(), rel=1e-12)
        assert torch.allclose(out[i, :-1], net(t, z[i:i + 1])[0])


def test_hutchinson_is_the_quadratic_form_of_its_probe_and_unbiased():
    net = _net()
    dyn = CNFDynamics(net, "hutchinson")
    t = torch.tensor(0.1, dtype=torch.float64)
    z = torch.randn(1, 3, dtype=torch.float64).expand(4000, 3).contiguous()
    dyn.noise = torch.randn(4000, 3, dtype=torch.float64)
    est = -dyn(t, torch.cat([z, torch.zeros(4000, 1, dtype=torch.float64)], 1))[:, -1]
    J = torch.autograd.functional.jacobian(lambda v: net(t, v[None])[0], z[0])
    e = dyn.noise
    assert torch.allclose(est, ((e @ J.T) * e).sum(1), rtol=1e-10, atol=1e-12)
    stderr = est.std().item() / math.sqrt(4000)
    assert abs(est.mean().item() - torch.trace(J).item()) < 4 * stderr


class Linear(nn.Module):
    def __init__(self, M):
        super().__init__()
        self.M = M

    def forward(self, t, z):
        return z @ self.M.T


def test_nll_of_linear_dynamics_matches_the_change_of_variables():
    M = torch.tensor([[-0.4, 1.0], [-0.6, 0.3]], dtype=torch.float64)
    model = CNF(2, [4], T=0.8, train_T=False).double()
    model.blocks[0].dynamics.net = Linear(M)
    x = torch.randn(6, 2, dtype=torch.float64)
    z = x @ torch.as_tensor(scipy.linalg.expm(M.numpy() * 0.8)).T
    # log p(x) = log N(z(T)) + ∫ tr(M) dt
    expected = (-standard_normal_logpdf(z) - torch.trace(M) * 0.8).mean().item()
    for solve in (FixedStepRK4("3/8", step_size=0.01), reference_solver(1e-10)):
        assert model.nll(solve, x).item() == pytest.approx(expected, rel=1e-8)
    back = model.inverse(reference_solver(1e-10), z)
    assert torch.allclose(back, x, atol=1e-8)


def test_zero_dynamics_give_the_standard_normal_nll():
    model = CNF(2, [8]).double()
    for p in model.blocks[0].dynamics.net.parameters():
        nn.init.zeros_(p)
    x = torch.randn(10, 2, dtype=torch.float64)
    got = model.nll(FixedStepRK4("classic", n_steps=3), x).item()
    assert got == pytest.approx(-standard_normal_logpdf(x).mean().item(), rel=1e-12)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_toy_generators_are_seeded_and_shaped(name):
    a = sample_toy(name, 101, np.random.default_rng(5))
    b = sample_toy(name, 101, np.random.default_rng(5))
    c = sample_toy(name, 101, np.random.default_rng(6))
    assert a.shape == (101, 2) and np.isfinite(a).all()
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_toy_generators_have_their_published_geometry():
    rng = np.random.default_rng(0)
    g = sample_toy("8gaussians", 20000, rng) * 1.414
    radius = np.linalg.norm(g, axis=1)
    assert abs(np.median(radius) - 4) < 0.1
    cb = sample_toy("checkerboard", 20000, rng) / 2  # cells of side 1 on [-2, 2]²
    assert np.all((np.floor(cb[:, 0]) + np.floor(cb[:, 1])) % 2 == 0)
    rings = np.linalg.norm(sample_toy("rings", 20000, rng), axis=1)
    for r in (0.75, 1.5, 2.25, 3.0):
        assert np.mean(np.abs(rings - r) < 0.3) > 0.2


@pytest.mark.parametrize("strategy,params", [
    ("disc_opt", {"rule": "3/8", "step_size": 0.25}),
    ("opt_disc", {"rtol": 1e-5, "atol": 1e-5}),
])
def test_trained_cnf_is_invertible_under_dopri5(strategy, params):
    res = run_cell(node_cell("cnf_toy", {"iterations": 30, "hidden": 32, "batch_size": 128,
                                         "n_test": 256, "val_every": 10, "n_samples": 50},
                             strategy, params))
    assert res.status == "ok", res.traceback
    m = res.metrics
    assert m["inv_err_dopri"] < 1e-4
    assert abs(m["test_nll_dopri"] - m["test_nll"]) < 0.05
    assert m["end_time"] != 0.5  # T is trained
    splits = {r[3] for r in res.history}
    assert {"train", "val", "data", "model"} <= splits
    assert (m["nfe_bwd"] > 0) is (strategy == "opt_disc")


def test_taylor_check_with_the_hutchinson_trace_has_slope_two():
    """One fixed probe for the whole check: E1 falls as h², as for the exact trace (a fresh
    probe per evaluation would make the loss a different function at every h). T = 0.6, not
    a multiple of h: at T = 0.5 a perturbed T adds a sliver step to the clipped grid, a kink
    of the discrete loss that shows as E1 ∝ h below h ≈ 2⁻¹²."""
    res = run_cell(node_cell("cnf_toy", {"iterations": 1, "hidden": 16, "batch_size": 64,
                                         "n_test": 64, "val_every": 0, "n_samples": 10,
                                         "divergence": "hutchinson", "dtype": "float64",
                                         "T": 0.6},
                             "disc_opt", {"rule": "3/8", "step_size": 0.25, "taylor": True}))
    assert res.status == "ok", res.traceback
    assert res.metrics["taylor_slope_e1"] == pytest.approx(2.0, abs=0.2)
    assert res.metrics["taylor_slope_e0"] == pytest.approx(1.0, abs=0.2)


def test_test_step_size_sets_the_integrator_of_the_test_metrics():
    params = {"iterations": 2, "hidden": 8, "batch_size": 32, "n_test": 64, "val_every": 0,
              "n_samples": 10}
    coarse = run_cell(node_cell("cnf_toy", params, "disc_opt",
                                {"rule": "3/8", "step_size": 0.25}))
    fine = run_cell(node_cell("cnf_toy", params, "disc_opt",
                              {"rule": "3/8", "step_size": 0.25, "test_step_size": 0.1}))
    assert coarse.status == fine.status == "ok"
    assert fine.metrics["train_loss"] == coarse.metrics["train_loss"]  # same training
    # T = 0.5 at the start: 2 steps of 0.25 vs 5 of 0.1, 4 evaluations each
    assert coarse.metrics["test_nfe"] == 4 * math.ceil(coarse.metrics["end_time"] / 0.25)
    assert fine.metrics["test_nfe"] == 4 * math.ceil(fine.metrics["end_time"] / 0.1)
