"""The separable-network pieces: feature/target matrices, the antisymmetric ResNet, the CDR
generator (a conservation identity, the content-hash cache) and the strategies' logs."""

import json

import numpy as np
import pytest
import torch
from harness.problems.datasets import cdr
from harness.solvers.separable.resnet_features import AntisymmetricResNet
from harness.solvers.separable.train import SeparableSolution, feature_matrix, target_matrix

from harness.runner import run_cell
from tests.test_node_solvers import node_cell


def test_feature_and_target_matrices_line_up_with_predict():
    gen = torch.Generator().manual_seed(0)
    F = torch.randn(4, 3, 5, generator=gen, dtype=torch.float64)  # N × f × P
    W = torch.randn(2, 4, generator=gen, dtype=torch.float64)      # t × (f + 1)
    Z = feature_matrix(F)
    assert Z.shape == (4, 20) and torch.all(Z[-1] == 1)

    class Identity(torch.nn.Module):
        def forward(self, y):
            return y

    pred = SeparableSolution(Identity(), W).predict(F)              # N × t × P
    assert torch.allclose(target_matrix(pred), W @ Z)
    dense = SeparableSolution(Identity(), W).predict(F[:, :, 0])    # N × t
    assert torch.allclose(dense.T, W @ feature_matrix(F[:, :, 0]))


def test_antisymmetric_resnet_kernel_and_regularizer():
    net = AntisymmetricResNet(2, 4, depth=3, final_time=1.5,
                              generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        net.theta.copy_(torch.arange(3.0).double()[:, None, None] * torch.ones(3, 4, 4))
        net.bias.zero_()
        net.K_open.fill_(0.5)
    # ‖K_open‖² = 8·0.25; Θ steps by 1 in all 16 entries over h = 0.5: 2 · 16 / 0.5
    assert net.regularizer().item() == pytest.approx(2.0 + 64.0)
    y = torch.randn(7, 2, dtype=torch.float64)
    x = torch.tanh(y @ net.K_open.T)
    # Θ_j constant matrices: K = Θ − Θᵀ − γI = −γI, so each stage is tanh(−γx)
    assert net(y).shape == (7, 4) and torch.all(net(y).abs() <= x.abs() + 1e-12)


def test_cdr_without_reaction_conserves_mass(monkeypatch):
    spec = {**cdr.SPEC, "k": 0.0, "n_samples": 3, "t_obs": [1.0], "n": 12}
    n = spec["n"]
    L = cdr._operator(n, spec["D"], spec["v"])
    assert abs(np.asarray(L.sum(axis=0))).max() < 1e-9  # zero-flux boundary: columns sum to 0
    # u(1) summed over the cells = 100 steps × Δt × Σ source: check via a fine sensor-free run
    Y, _ = cdr.generate_cdr(spec)
    centres = (np.arange(n) + 0.5) / n
    gx, gy = np.meshgrid(centres, centres)
    cells = np.stack([gx.ravel(), gy.ravel()], 1)
    src = np.array([(a, b) for b in np.linspace(0.1, 0.9, 5) for a in np.linspace(0.1, 0.9, 11)])
    phi = np.exp(-((cells[:, None] - src[None]) ** 2).sum(-1) / (2 * spec["sigma"] ** 2))
    from scipy.sparse import identity
    from scipy.sparse.linalg import splu

    lu = splu((identity(n * n) - spec["dt"] * L).tocsc())
    u = np.zeros((n * n, 3))
    for _ in range(100):
        u = lu.solve(u + spec["dt"] * (phi @ Y.T))
    assert np.allclose(u.sum(0), 1.0 * (phi @ Y.T).sum(0), rtol=1e-10)


def test_cdr_data_is_generated_once_and_cached_by_content_hash(tmp_path, monkeypatch):
    monkeypatch.setenv(cdr.CACHE_ENV, str(tmp_path))
    small = json.dumps({**cdr.SPEC, "n_samples": 10, "n": 8}, sort_keys=True)
    Y, C = cdr.load_cdr(small)
    files = list(tmp_path.glob("cdr-*.npz"))
    assert len(files) == 1 and files[0].name == f"cdr-{cdr.spec_hash(json.loads(small))}.npz"
    assert Y.shape == (10, 55) and C.shape == (10, 72) and np.all(C > 0)
    stamp = files[0].stat().st_mtime_ns
    cdr.load_cdr.cache_clear()
    _, C2 = cdr.load_cdr(small)  # from the file, not regenerated
    assert files[0].stat().st_mtime_ns == stamp and np.array_equal(C, C2)
    other = json.dumps({**cdr.SPEC, "n_samples": 10, "n": 8, "k": 2.0}, sort_keys=True)
    cdr.load_cdr(other)
    assert len(list(tmp_path.glob("cdr-*.npz"))) == 2  # another spec, another file
    cdr.load_cdr.cache_clear()


@pytest.mark.parametrize("strategy", ["slimtrain", "adam"])
def test_strategies_log_losses_per_epoch_and_slimtrain_its_regularization(strategy):
    res = run_cell(node_cell("cdr", {"n_train": 40, "width": 4, "depth": 2}, strategy,
                             {"epochs": 3, "batch_size": 10}))
    assert res.status == "ok", res.traceback
    losses = [r for r in res.history if r[4] == "loss"]
    assert [(r[0], r[3]) for r in losses] == [(e, s) for e in range(3)
                                             for s in ("train", "val", "test")]
    lam_bar = [r[5] for r in res.history if r[4] == "lam_bar"]
    if strategy == "slimtrain":
        assert len(lam_bar) == 12 and res.metrics["lam_bar"] == pytest.approx(lam_bar[-1])
        assert all(b >= 1e-7 for b in lam_bar)
    else:
        assert lam_bar == [] and res.metrics["lam_bar"] is None
    m = res.metrics
    assert m["rel_err_test_min"] <= m["rel_err_test_mean"] <= m["rel_err_test_max"]


def test_autoencoder_reads_mnist_idx_files(tmp_path):
    from tests.test_mnist import write_idx

    write_idx(tmp_path, n=60, split="train")
    write_idx(tmp_path, n=12, split="test")
    res = run_cell(node_cell("autoencoder", {"dataset": "mnist", "data_dir": str(tmp_path)},
                             "adam", {"epochs": 1, "batch_size": 16}))
    assert res.status == "ok", res.traceback
    assert res.metrics["rel_err_test_max"] >= res.metrics["rel_err_test_min"] > 0
    missing = run_cell(node_cell("autoencoder", {"dataset": "mnist",
                                                 "data_dir": str(tmp_path / "none")},
                                 "adam", {"epochs": 1}))
    assert missing.status == "error" and "is not a folder" in missing.error


def test_autoencoder_gradient_is_the_authors_pixel_mean_mse_plus_adam_weight_decay():
    """At a fixed point, the gradient of the harness's autoencoder training loss equals that
    of the authors' objective: torch's MSELoss (mean over images and pixels) of a plain
    ConvTranspose2d output layer, plus Adam's weight_decay α₁·θ and α₂·W."""
    from harness.problems.autoencoder import Autoencoder
    from harness.solvers.separable.train import training_loss

    from harness.plugin import RunContext

    task = Autoencoder(dataset="mnist5k", n_train=8, n_eval=4).build(0, RunContext("cpu", 0))
    task.features.double()
    Y, C = (t.double() for t in task.data["train"])
    gen = torch.Generator().manual_seed(3)
    W = (0.1 * torch.randn(1, 257, generator=gen, dtype=torch.float64)).requires_grad_(True)
    a1, a2 = 1e-3, 1e-1
    params = list(task.features.parameters())

    Z, Cm = feature_matrix(task.features(Y)), target_matrix(C)
    ours = torch.autograd.grad(training_loss(task, W, Z, Cm, len(Y), a1, a2), [*params, W])

    # the authors' network: the decoder's last layer as a ConvTranspose2d(16 → 1, 4×4, s2, p1)
    h = task.features.decoder(task.features.encoder(Y.reshape(-1, 1, 28, 28)))
    kernel = W[0, :-1].reshape(16, 1, 4, 4)
    out = torch.nn.functional.conv_transpose2d(h, kernel, W[0, -1:], stride=2, padding=1)
    mse = torch.nn.MSELoss()(out.reshape(len(Y), 784), C.reshape(len(Y), 784))
    theirs = torch.autograd.grad(mse, [*params, W])
    theirs = [g + a1 * p for g, p in zip(theirs[:-1], params, strict=True)] + [
        theirs[-1] + a2 * W]
    for g_ours, g_theirs in zip(ours, theirs, strict=True):
        assert torch.allclose(g_ours, g_theirs, rtol=1e-10, atol=1e-14)


def test_autoencoder_reports_the_per_image_sum_of_squares():
    from harness.problems.autoencoder import Autoencoder
    from harness.solvers.separable.train import split_errors

    from harness.plugin import RunContext

    task = Autoencoder(dataset="mnist5k", n_train=8, n_eval=5).build(0, RunContext("cpu", 0))
    W = torch.zeros(1, 257)
    loss, _ = split_errors(SeparableSolution(task.features, W), *task.data["test"],
                           weight=task.eval_weight)
    C = task.data["test"][1].double()  # a zero network predicts 0: the loss is Σ c² / images
    assert loss == pytest.approx(float((C**2).sum()) / len(C), rel=1e-6)


def test_the_training_loop_runs_as_a_plain_library_call_without_recorder_or_clock():
    from harness.solvers.separable.train import train_separable

    from harness import registry
    from harness.plugin import RunContext

    peaks = registry.get("problem", "peaks")
    task = peaks(**peaks.smoke_params).build(0, RunContext("cpu", 0))
    solution, stats = train_separable(task, method="adam", lr=1e-2, epochs=2, batch_size=10)
    assert len(stats.epoch_s) == 2 and all(t > 0 for t in stats.epoch_s)
    assert len(stats.losses["val"]) == 2 and solution.W.shape[0] == task.n_targets

    ticks = iter(range(100))
    _, timed = train_separable(task, method="adam", lr=1e-2, epochs=2, batch_size=10,
                               clock=lambda: float(next(ticks)))
    assert timed.epoch_s == [1.0, 1.0]  # the clock given is the clock read
