"""The separable-network strategies as harness plug-ins (family ``separable``): slimTrain
and Adam, both running :func:`~harness.solvers.separable.train.train_separable`."""

from __future__ import annotations

from typing import Any, ClassVar

from harness.errors import ParamError
from harness.params import Param
from harness.plugin import Diverged, Fit, Metric, RunContext, Strategy
from harness.vocabulary import PER_ITERATION

from .slimtik import DENOMINATORS, SELECT, TRIALS, SlimTik, pytorch_rule_gap
from .train import n_features, train_separable

COMMON: dict[str, Param] = {
    "lr": Param(float, 1e-3, "Adam learning rate (θ; for adam also W)", low=0, low_open=True),
    "alpha_theta": Param(float, None, "weight α_θ of the regularizer R(θ) (null: the "
                         "problem's default)", low=0, nullable=True),
    "batch_size": Param(int, 5, "samples per batch", low=1),
    "epochs": Param(int, 20, "passes over the training set", low=1),
}
METRICS: dict[str, Metric] = {
    "train_loss": Metric(float, "the problem's reported loss on the training set after the "
                                "last epoch ((1/2N)‖WZ − C‖²; autoencoder: per-image SSE)"),
    "val_loss": Metric(float, "the problem's reported loss on the validation set after the "
                              "last epoch"),
    "best_val_loss": Metric(float, "lowest validation loss over the epochs"),
    "epoch_s": Metric(float, "median wall time of one epoch, evaluation excluded (s)", "s",
                      role=PER_ITERATION),
    "lam_bar": Metric(float, "slimtrain: final cumulative regularization Λ̄ (null for adam)"),
}


class _SeparableStrategy(Strategy):
    family = "separable"
    metrics: ClassVar[dict[str, Metric]] = METRICS
    method: ClassVar[str]

    def slimtik(self, task: Any) -> SlimTik | None:
        return None

    def fit(self, task: Any, run: RunContext) -> Fit:
        p = self.params
        try:
            solution, stats = train_separable(
                task, run, method=self.method, lr=p["lr"], epochs=p["epochs"],
                batch_size=p["batch_size"], alpha_theta=p["alpha_theta"],
                alpha_w=p.get("alpha_w", 0.0), slimtik=self.slimtik(task), seed=run.seed)
        except FloatingPointError as err:
            raise Diverged(str(err)) from err
        return Fit(solution, stats.summary())


class SlimTrain(_SeparableStrategy):
    """slimTrain: per batch, the slimTik update of W (learning-rate free, Λ by sampled GCV),
    then one Adam step on the feature extractor with W held fixed."""

    name = "slimtrain"
    method = "slimtrain"
    parameters: ClassVar[dict[str, Param]] = {
        **COMMON,
        "r": Param(int, 5, "memory depth: the last r + 1 batches of features are kept", low=0),
        "select": Param(str, "sgcv", "Λ per batch: sgcv (sampled GCV over ± trial points), "
                        "constant (Λ = lam0) or none (0)", choices=SELECT),
        "lam0": Param(float, 1e-10, "initial cumulative regularization Λ̄₀ (and Λ per batch "
                      "when select: constant)", low=0),
        "lb": Param(float, 1e-7, "lower bound of Λ̄ + Λ", low=0, low_open=True),
        "trials": Param(str, "matlab", "sGCV's trial points as each source builds them: "
                        "matlab (±30 magnitudes 1e-16 … Λ̄/2, the paper's MATLAB code) or "
                        "pytorch (−logspace(eps, Λ̄), logspace(eps, ub), 30 each, the "
                        "authors' PyTorch autoencoder)", choices=TRIALS),
        "ub": Param(float, None, "trials: matlab — a cap on Λ̄ + Λ (null: none; MATLAB's own "
                    "bound never acts); trials: pytorch — the largest positive trial point "
                    "(required with select: sgcv; the authors' autoencoder runs use 10)", low=0,
                    low_open=True, nullable=True),
        "denominator": Param(str, "observations", "sGCV normalisation: observations "
                             "(n_b·n_t, the MATLAB code) or samples (n_b samples, e.g. "
                             "images, the PyTorch code)",
                             choices=DENOMINATORS),
    }
    smoke_params: ClassVar[dict[str, Any]] = {"epochs": 2, "batch_size": 10}

    @classmethod
    def check(cls, params: dict[str, Any]) -> None:
        if params["trials"] == "pytorch":
            gap = pytorch_rule_gap(params["select"], params["ub"], params["lam0"])
            if gap is not None:
                raise ParamError(*gap)

    def slimtik(self, task: Any) -> SlimTik:
        p = self.params
        return SlimTik(task.n_targets, n_features(task), memory_depth=p["r"],
                       select=p["select"], lam_bar=p["lam0"], lb=p["lb"], ub=p["ub"],
                       denominator=p["denominator"], trials=p["trials"],
                       device=task.data["train"][0].device)


class AdamSeparable(_SeparableStrategy):
    """Adam on θ and W jointly, with Tikhonov regularization α_W on W."""

    name = "adam"
    method = "adam"
    parameters: ClassVar[dict[str, Param]] = {
        **COMMON,
        "alpha_w": Param(float, 1e-10, "Tikhonov weight α_W on W", low=0),
    }
    smoke_params: ClassVar[dict[str, Any]] = {"epochs": 2, "batch_size": 10}
