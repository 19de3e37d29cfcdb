"""MNIST from the standard IDX files (gzipped or not) in a data directory.

The files are ``train-images-idx3-ubyte`` and ``train-labels-idx1-ubyte`` (and the
``t10k-`` pair for the official test set), each optionally with ``.gz``. Every header,
size and byte count is checked; a missing, truncated or corrupt file raises a
:class:`~harness.errors.DataError` that names the file and what is wrong.
"""

from __future__ import annotations

import gzip
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np

from harness.errors import DataError

IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
SPLITS = {"train": "train", "test": "t10k"}


def find_file(root: Path, split: str, kind: str) -> Path:
    """The IDX file of ``split`` ('train'/'test') and ``kind`` ('images'/'labels')."""
    dims = "idx3" if kind == "images" else "idx1"
    stem = f"{SPLITS[split]}-{kind}-{dims}-ubyte"
    candidates = [stem, stem + ".gz", stem.replace(f"-{dims}", f".{dims}"),
                  stem.replace(f"-{dims}", f".{dims}") + ".gz"]
    for name in candidates:
        if (root / name).is_file():
            return root / name
    raise DataError(f"MNIST file {stem}[.gz] not found in {str(root)!r}")


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"cannot read {str(path)!r}: {err}") from None


def _header(path: Path, data: bytes, magic: int, ndim: int) -> tuple[int, ...]:
    if len(data) < 4 + 4 * ndim:
        raise DataError(f"{str(path)!r} is too short for an IDX header ({len(data)} bytes)")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(f"{str(path)!r} is not an IDX file of this kind: magic number "
                        f"0x{found:08x}, expected 0x{magic:08x}")
    return tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))


def parse_idx(path: Path, kind: str) -> np.ndarray:
    """Images (N × rows·cols, uint8) or labels (N, uint8) from one IDX file."""
    data = _read_bytes(path)
    if kind == "images":
        dims = _header(path, data, IMAGES_MAGIC, 3)
        offset = 16
    else:
        dims = _header(path, data, LABELS_MAGIC, 1)
        offset = 8
    expected = int(np.prod(dims))
    body = len(data) - offset
    if body != expected:
        raise DataError(f"{str(path)!r} is truncated or corrupt: the header announces "
                        f"{'×'.join(map(str, dims))} = {expected} bytes, the file has {body}")
    array = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if kind == "images":
        return array.reshape(dims[0], dims[1] * dims[2])
    if array.max(initial=0) > 9:
        raise DataError(f"{str(path)!r} holds a label {int(array.max())}; MNIST labels are 0…9")
    return array


def check_files(root: Path, split: str = "train") -> int:
    """Check that both files of ``split`` exist and their headers agree; the image count."""
    counts = []
    for kind, magic, ndim in (("images", IMAGES_MAGIC, 3), ("labels", LABELS_MAGIC, 1)):
        path = find_file(root, split, kind)
        opener = gzip.open if path.suffix == ".gz" else open
        try:
            with opener(path, "rb") as f:
                head = f.read(4 + 4 * ndim)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"cannot read {str(path)!r}: {err}") from None
        counts.append(_header(path, head, magic, ndim)[0])
    if counts[0] != counts[1]:
        raise DataError(f"MNIST {split} files in {str(root)!r} disagree: {counts[0]} images, "
                        f"{counts[1]} labels")
    return counts[0]


@lru_cache(maxsize=2)
def load_mnist(root: str, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Images as float64 (N × 784, pixel values 0…255) and labels (N) of ``split``."""
    path = Path(root)
    images = parse_idx(find_file(path, split, "images"), "images")
    labels = parse_idx(find_file(path, split, "labels"), "labels")
    if len(images) != len(labels):
        raise DataError(f"MNIST {split} files in {root!r} disagree: {len(images)} images, "
                        f"{len(labels)} labels")
    return images.astype(np.float64), labels.astype(np.int64)
