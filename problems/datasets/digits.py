"""scikit-learn's bundled 8×8 handwritten digits (1797 images, 10 classes): no download."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

N_IMAGES = 1797


@lru_cache(maxsize=1)
def load_digits_images() -> tuple[np.ndarray, np.ndarray]:
    """Images as float64 (1797 × 64, pixel values 0…16) and integer labels (1797)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data.astype(np.float64), data.target.astype(np.int64)
