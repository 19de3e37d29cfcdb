"""The 2-D toy densities of FFJORD's ``toy_data.inf_train_gen`` (docs/papers.md), with the
same constants, drawn from a NumPy generator so a seed fixes every batch."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _seed(rng: np.random.Generator) -> int:
    return int(rng.integers(2**31 - 1))  # scikit-learn's generators take an int seed


def eight_gaussians(n: int, rng: np.random.Generator) -> np.ndarray:
    """Eight Gaussians (std 0.5) at radius 4 on the unit-circle directions, scaled by 1/1.414."""
    r = 1.0 / np.sqrt(2.0)
    centers = 4.0 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (r, r), (r, -r), (-r, r),
                              (-r, -r)])
    x = rng.standard_normal((n, 2)) * 0.5 + centers[rng.integers(8, size=n)]
    return x / 1.414


def checkerboard(n: int, rng: np.random.Generator) -> np.ndarray:
    """Uniform on the black squares of a 4 × 4 checkerboard on [−4, 4]²."""
    x1 = rng.random(n) * 4 - 2
    x2 = rng.random(n) - rng.integers(0, 2, n) * 2.0 + np.floor(x1) % 2
    return np.stack([x1, x2], axis=1) * 2


def moons(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two interleaved half circles (noise 0.1), scaled by 2 and shifted by (−1, −0.2)."""
    from sklearn.datasets import make_moons  # here: sklearn takes 0.4 s to import

    x = make_moons(n_samples=n, noise=0.1, random_state=_seed(rng))[0]
    return x * 2 + np.array([-1.0, -0.2])


def pinwheel(n: int, rng: np.random.Generator) -> np.ndarray:
    """Five curved arms (radial std 0.3, tangential std 0.1, rate 0.25), scaled by 2."""
    classes, per = 5, -(-n // 5)
    rads = np.linspace(0, 2 * np.pi, classes, endpoint=False)
    feats = rng.standard_normal((classes * per, 2)) * np.array([0.3, 0.1])
    feats[:, 0] += 1.0
    labels = np.repeat(np.arange(classes), per)
    angles = rads[labels] + 0.25 * np.exp(feats[:, 0])
    rot = np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)])
    rot = rot.T.reshape(-1, 2, 2)
    return 2 * rng.permutation(np.einsum("ti,tij->tj", feats, rot))[:n]


def two_spirals(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two interleaved spirals with noise 0.1."""
    m = -(-n // 2)
    r = np.sqrt(rng.random((m, 1))) * 540 * (2 * np.pi) / 360
    d1x = -np.cos(r) * r + rng.random((m, 1)) * 0.5
    d1y = np.sin(r) * r + rng.random((m, 1)) * 0.5
    x = np.vstack((np.hstack((d1x, d1y)), np.hstack((-d1x, -d1y)))) / 3
    return (x + rng.standard_normal(x.shape) * 0.1)[:n]


def circles(n: int, rng: np.random.Generator) -> np.ndarray:
    """Two concentric circles (factor 0.5, noise 0.08), scaled by 3."""
    from sklearn.datasets import make_circles

    return make_circles(n_samples=n, factor=0.5, noise=0.08, random_state=_seed(rng))[0] * 3


def rings(n: int, rng: np.random.Generator) -> np.ndarray:
    """Four concentric rings of radii 1, 0.75, 0.5, 0.25 (scaled by 3), noise 0.08."""
    sizes = [n - 3 * (n // 4)] + [n // 4] * 3
    parts = []
    for size, radius in zip(sizes, (1.0, 0.75, 0.5, 0.25), strict=True):
        ang = np.linspace(0, 2 * np.pi, size, endpoint=False)
        parts.append(np.stack([np.cos(ang), np.sin(ang)], axis=1) * radius)
    x = rng.permutation(np.concatenate(parts) * 3.0)
    return x + rng.normal(scale=0.08, size=x.shape)


def swissroll(n: int, rng: np.random.Generator) -> np.ndarray:
    """scikit-learn's Swiss roll (noise 1) projected on its first and third axes, / 5."""
    from sklearn.datasets import make_swiss_roll

    return make_swiss_roll(n_samples=n, noise=1.0, random_state=_seed(rng))[0][:, [0, 2]] / 5


GENERATORS: dict[str, Callable[[int, np.random.Generator], np.ndarray]] = {
    "8gaussians": eight_gaussians, "checkerboard": checkerboard, "moons": moons,
    "pinwheel": pinwheel, "2spirals": two_spirals, "circles": circles, "rings": rings,
    "swissroll": swissroll,
}


def sample_toy(name: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """n samples (n × 2, float64) of the toy density ``name``."""
    return np.asarray(GENERATORS[name](n, rng), dtype=np.float64)
