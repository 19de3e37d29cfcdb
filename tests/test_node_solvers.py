"""The neural-ODE integrators and the Taylor check against analytic references."""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from harness.solvers.node import (
    Adaptive,
    FixedStepRK4,
    fitted_slope,
    reference_solver,
    rk4_step,
    taylor_check,
    unless_blown_up,
)
from torch import nn

from harness.cell import Resources, make_cell
from harness.errors import InputError
from harness.grid import parse_grid
from harness.plugin import RunContext
from harness.runner import run_cell

A = np.array([[-0.1, 2.0], [-2.0, -0.1]])
Y0 = np.array([1.0, 0.5])


def linear(t, y):
    return y @ torch.as_tensor(A).T


def exact(t):
    return scipy.linalg.expm(A * t) @ Y0


def node_cell(problem, pp, strategy, sp, seed=0):
    return make_cell(problem, strategy, pp, sp, seed, grid="t",
                     resources=Resources(device="cpu"))


@pytest.mark.parametrize("rule", ["classic", "3/8"])
def test_rk4_global_error_is_fourth_order(rule):
    t = torch.tensor([0.0, 2.0], dtype=torch.float64)
    errors = []
    for n in (10, 20, 40, 80):
        ys = FixedStepRK4(rule, n_steps=n)(linear, torch.as_tensor(Y0), t)
        errors.append(np.linalg.norm(ys[-1].numpy() - exact(2.0)))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(np.abs(orders - 4) < 0.15), orders


def test_step_size_grid_is_one_grid_over_the_span_and_interpolates_outputs():
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    solve = FixedStepRK4("classic", step_size=0.2)  # one grid 0, 0.2, …, 1.0: 5 steps
    ys = solve(linear, torch.as_tensor(Y0), t)
    assert solve.nfe == 5 * 4
    y, states = torch.as_tensor(Y0), [torch.as_tensor(Y0)]
    for a in (0.0, 0.2, 0.4, 0.6, 0.8):  # the same steps taken by hand
        y = rk4_step(linear, torch.tensor(a, dtype=torch.float64), y,
                     torch.tensor(0.2, dtype=torch.float64))
        states.append(y)
    assert torch.allclose(ys[-1], states[-1], rtol=1e-14)
    # t = 0.5 lies halfway between the grid points 0.4 and 0.6: the cubic Hermite midpoint
    f = [linear(None, states[k]) for k in (2, 3)]
    mid = (states[2] + states[3]) / 2 + 0.2 / 8 * (f[0] - f[1])
    assert torch.allclose(ys[1], mid, rtol=1e-14)
    for k, tk in enumerate(t.tolist()):
        assert np.allclose(ys[k].numpy(), exact(tk), atol=1e-3)


def test_interpolated_outputs_are_fourth_order_accurate():
    t = torch.tensor([0.0, 0.37, 1.21, 2.0], dtype=torch.float64)
    errors = []
    for h in (0.1, 0.05, 0.025):
        ys = FixedStepRK4("3/8", step_size=h)(linear, torch.as_tensor(Y0), t)
        errors.append(max(np.linalg.norm(ys[k].numpy() - exact(tk))
                          for k, tk in enumerate(t.tolist())))
    orders = np.log2(np.array(errors[:-1]) / np.array(errors[1:]))
    assert np.all(orders > 3.7), orders


def test_spiral_disc_opt_with_h_005_takes_one_grid_of_30_steps():
    """The paper's h = 0.05 on the spiral's 30 data times on [0, 1.5]: 30 steps, not a
    restarted grid with sliver steps per data interval."""
    from harness.problems.spiral import Spiral

    task = Spiral().build(0, RunContext("cpu", 0))
    solve = FixedStepRK4("classic", step_size=0.05)
    solve.reset()
    with torch.no_grad():
        task.loss(solve)
    assert solve.nfe <= 4 * math.ceil(1.5 / 0.05)


def test_trainable_end_time_gets_the_analytic_gradient():
    a = -0.7
    T = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    t = torch.stack([torch.zeros_like(T), T])
    y = FixedStepRK4("3/8", step_size=0.01)(lambda t, y: a * y,
                                            torch.tensor([2.0], dtype=torch.float64), t)[-1]
    y.sum().backward()
    assert T.grad.item() == pytest.approx(a * 2.0 * math.exp(a * 0.9), rel=1e-8)


def test_dopri5_reference_matches_the_analytic_solution():
    solve = reference_solver(1e-10)
    t = torch.linspace(0, 3, 7, dtype=torch.float64)
    ys = solve(linear, torch.as_tensor(Y0), t)
    assert max(np.abs(ys[k].numpy() - exact(tk)).max() for k, tk in enumerate(t.tolist())) < 1e-8
    assert solve.nfe > 0


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        gen = torch.Generator().manual_seed(3)
        self.w1 = nn.Parameter(torch.randn(8, 2, generator=gen, dtype=torch.float64) / 2)
        self.w2 = nn.Parameter(torch.randn(2, 8, generator=gen, dtype=torch.float64) / 2)

    def forward(self, t, y):
        return torch.tanh(y @ self.w1.T) @ self.w2.T


def _gradient(solve, net):
    net.zero_grad()
    y0 = torch.tensor([[1.0, -0.5], [0.3, 0.8]], dtype=torch.float64)
    t = torch.tensor([0.0, 0.7, 1.5], dtype=torch.float64)
    ys = solve(net, y0, t)
    (ys**2).sum().backward()
    return torch.cat([p.grad.flatten() for p in net.parameters()])


def test_adjoint_gradient_matches_backprop_at_tight_tolerance():
    net = Net()
    adjoint = _gradient(Adaptive("dopri5", 1e-11, 1e-11, adjoint=True), net)
    backprop = _gradient(Adaptive("dopri5", 1e-11, 1e-11, adjoint=False), net)
    rk4 = _gradient(FixedStepRK4("classic", step_size=1e-3), net)
    assert torch.allclose(adjoint, backprop, rtol=1e-5, atol=1e-8)
    assert torch.allclose(adjoint, rk4, rtol=1e-5, atol=1e-8)


def test_adjoint_counts_backward_evaluations_and_backprop_none():
    net = Net()
    for solve, backward in ((Adaptive("dopri5", 1e-6, 1e-6, adjoint=True), True),
                            (FixedStepRK4("classic", n_steps=5), False)):
        y0 = torch.ones(1, 2, dtype=torch.float64)
        loss = solve(net, y0, torch.tensor([0.0, 1.0], dtype=torch.float64)).sum()
        forward = solve.nfe
        loss.backward()
        assert forward > 0
        assert (solve.nfe > forward) is backward


def test_taylor_check_slopes_on_an_analytic_function():
    x = torch.tensor([0.3, -1.2, 0.8], dtype=torch.float64, requires_grad=True)

    def loss():
        return (x**3).sum() + torch.sin(x).prod()

    right = taylor_check(loss, [x])
    assert right.slope_e0 == pytest.approx(1, abs=0.05)
    assert right.slope_e1 == pytest.approx(2, abs=0.05)
    x.grad = None
    loss().backward()
    wrong = taylor_check(loss, [x], gradient=[x.grad * 1.2])
    assert wrong.slope_e1 == pytest.approx(1, abs=0.1)


def test_fitted_slope_ignores_round_off_and_large_steps():
    h = [2.0**-k for k in range(1, 21)]
    err = [max(5 * x**2, 1e-15) for x in h]
    assert fitted_slope(h, err, scale=1.0) == pytest.approx(2, abs=1e-9)
    assert fitted_slope(h[:5], err[:5], scale=1.0) is None


def test_taylor_check_through_the_harness_disc_opt_is_second_order():
    res = run_cell(node_cell("spiral", {"iterations": 1}, "disc_opt",
                             {"step_size": 1.5 / 29, "taylor": True}))
    assert res.status == "ok", res.traceback
    assert res.metrics["taylor_slope_e1"] == pytest.approx(2, abs=0.2)
    assert res.metrics["taylor_slope_e0"] == pytest.approx(1, abs=0.2)
    rows = [r for r in res.history if r[3] == "taylor" and r[4] == "taylor_e1"]
    assert [r[0] for r in rows] == list(range(1, 21))


def test_taylor_check_opt_disc_at_loose_tolerance_stalls():
    res = run_cell(node_cell("spiral", {"iterations": 1}, "opt_disc",
                             {"rtol": 1e-2, "atol": 1e-2, "taylor": True}))
    assert res.status == "ok", res.traceback
    assert res.metrics["taylor_slope_e1"] < 1.5


def test_a_blow_up_is_a_floating_point_error_and_a_null_check():
    y0 = torch.ones(1, dtype=torch.float64)
    t = torch.tensor([0.0, 2.0], dtype=torch.float64)  # y' = y² blows up at t = 1
    with pytest.raises(FloatingPointError, match="underflow"):
        reference_solver()(lambda t, y: y**2, y0, t)
    assert unless_blown_up(lambda: float(reference_solver()(lambda t, y: y**2, y0, t)[-1])) is None
    assert unless_blown_up(lambda: float("inf")) is None
    assert unless_blown_up(lambda: 1.5) == 1.5


def _explicit_rk(weights, f, y, h):
    """One step of the Tsit5 tableau for an autonomous scalar ODE (the nodes c are unused)."""
    from harness.solvers.node.tsit5 import A

    k = [f(y)]
    for row in A:
        k.append(f(y + h * sum(a * ki for a, ki in zip(row, k, strict=True))))
    return y + h * sum(b * ki for b, ki in zip(weights, k, strict=True))


def test_tsit5_tableau_is_fifth_order_with_a_fourth_order_embedding():
    from harness.solvers.node.tsit5 import B_ERROR, B

    def f(y):
        return -y**2 + math.sin(y)  # autonomous, non-linear

    def exact(h):  # a very fine classic RK4 reference
        return FixedStepRK4("classic", n_steps=4000)(
            lambda t, y: f(y), torch.tensor([0.8], dtype=torch.float64),
            torch.tensor([0.0, h], dtype=torch.float64))[-1].item()

    embedded = [b - e for b, e in zip(B, B_ERROR, strict=True)]
    for weights, order in ((B, 5), (embedded, 4)):
        errs = [abs(_explicit_rk(weights, f, 0.8, h) - exact(h)) for h in (0.2, 0.1)]
        assert math.log2(errs[0] / errs[1]) == pytest.approx(order + 1, abs=0.3)  # local


def test_tsit5_dense_output_is_consistent():
    from harness.solvers.node.tsit5 import B, dense_weights

    assert dense_weights(1.0) == pytest.approx(B, abs=1e-12)
    for theta in (0.1, 0.5, 0.9):
        assert sum(dense_weights(theta)) == pytest.approx(theta, abs=1e-12)


def test_tsit5_through_torchdiffeq_matches_the_analytic_solution():
    solve = Adaptive("tsit5", 1e-10, 1e-10)
    t = torch.linspace(0, 3, 13, dtype=torch.float64)  # interior outputs: interpolation
    ys = solve(linear, torch.as_tensor(Y0), t)
    assert max(np.abs(ys[k].numpy() - exact(tk)).max() for k, tk in enumerate(t.tolist())) < 1e-9
    net = Net()
    adjoint = _gradient(Adaptive("tsit5", 1e-11, 1e-11, adjoint=True), net)
    backprop = _gradient(Adaptive("dopri5", 1e-11, 1e-11, adjoint=False), net)
    assert torch.allclose(adjoint, backprop, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("strategy,message", [
    ("disc_opt: {step_size: 0.1, n_steps: 4}", "n_steps: give step_size or n_steps, not both"),
    ("disc_opt: {rule: rk5}", "rule"),
    ("opt_disc: {method: tsit7}", "tsit5"),
    ("opt_disc: {rtol: 0}", "rtol"),
])
def test_bad_node_parameters_name_the_key(strategy, message):
    text = f"name: x\nexperiments:\n  - problem: spiral\n    strategies:\n      - {strategy}\n"
    with pytest.raises(InputError) as err:
        parse_grid(text, "g.yaml")
    assert str(err.value).startswith("g.yaml: ") and message in str(err.value), str(err.value)
