"""Embedded stand-ins for the MAF sets, needing no download (docs/papers.md): only the
Disc-Opt vs Opt-Disc *comparison* carries over, not the published NLLs.

- ``digits63``: scikit-learn's 8×8 digits without the last pixel (63-d, like BSDS300's
  patches), dequantised with U(0, 1) noise; 1797 rows split 80/10/10.
- ``mix6``, ``mix8``, ``mix21``, ``mix43``: Gaussian mixtures (8 components with random
  weights, means and full covariances) in the dimensions of POWER, GAS, HEPMASS and
  MINIBOONE; 20 000 rows split 80/10/10. Their density is known, so the true test NLL
  is a floor the trained flows are measured against.

All data are fixed (generated from constant seeds): the cell's seed changes the model's
initialisation and the batches, not the data, as with the MAF files. Rows are
standardised with the train + validation mean and std.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.special import logsumexp

from .digits import load_digits_images
from .maf import Splits

MIXTURE_DIMS = {"mix6": 6, "mix8": 8, "mix21": 21, "mix43": 43}
STANDINS = ("digits63", *MIXTURE_DIMS)
N_MIXTURE, COMPONENTS = 20_000, 8


def _split(data: np.ndarray, rng: np.random.Generator) -> tuple[Splits, np.ndarray, np.ndarray]:
    """Shuffle, split 80/10/10 and standardise; also return the mean and std used."""
    data = data[rng.permutation(len(data))]
    n_test = n_val = len(data) // 10
    train, val, test = data[n_test + n_val:], data[n_test:n_test + n_val], data[:n_test]
    ref = np.vstack([train, val])
    mu, sd = ref.mean(axis=0), ref.std(axis=0)
    return Splits((train - mu) / sd, (val - mu) / sd, (test - mu) / sd), mu, sd


@cache
def digits63() -> Splits:
    rng = np.random.default_rng(63)
    X, _ = load_digits_images()
    return _split(X[:, :63] + rng.random((len(X), 63)), rng)[0]


@cache
def mixture(name: str) -> tuple[Splits, np.ndarray]:
    """(standardised splits, true NLL of each standardised test row in nats)."""
    d = MIXTURE_DIMS[name]
    rng = np.random.default_rng(1000 + d)
    weights = rng.dirichlet(np.full(COMPONENTS, 2.0))
    means = rng.normal(scale=2.0, size=(COMPONENTS, d))
    chols = []
    for _ in range(COMPONENTS):  # well-conditioned random covariances L Lᵀ
        L = np.tril(rng.normal(scale=0.3 / np.sqrt(d), size=(d, d)), -1)
        chols.append(L + np.diag(np.exp(rng.uniform(-1.0, 0.5, size=d))))
    comp = rng.choice(COMPONENTS, size=N_MIXTURE, p=weights)
    z = rng.standard_normal((N_MIXTURE, d))
    x = means[comp] + np.einsum("nij,nj->ni", np.stack(chols)[comp], z)
    splits, mu, sd = _split(x, rng)
    test_raw = splits.test * sd + mu
    logp = mixture_logpdf(test_raw, weights, means, chols)
    # y = (x − μ)/σ ⇒ log p_y(y) = log p_x(x) + Σ log σ
    return splits, -(logp + np.log(sd).sum())


def mixture_logpdf(x: np.ndarray, weights: np.ndarray, means: np.ndarray,
                   chols: list[np.ndarray]) -> np.ndarray:
    """log Σₖ wₖ 𝒩(x; μₖ, LₖLₖᵀ) per row."""
    from scipy.linalg import solve_triangular

    d = x.shape[1]
    terms = []
    for w, m, L in zip(weights, means, chols, strict=True):
        r = solve_triangular(L, (x - m).T, lower=True)
        logdet = np.log(np.diag(L)).sum()
        terms.append(np.log(w) - 0.5 * (r**2).sum(axis=0) - logdet - 0.5 * d * np.log(2 * np.pi))
    return logsumexp(np.stack(terms), axis=0)


def load_standin(name: str) -> tuple[Splits, np.ndarray | None]:
    """(splits, true NLL per test row, or None) of stand-in ``name``."""
    if name == "digits63":
        return digits63(), None
    return mixture(name)
