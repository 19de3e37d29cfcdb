"""The MNIST IDX loader on small fixtures written here, and its errors."""

import gzip
import struct

import numpy as np
import pytest
from harness.problems.datasets.mnist import check_files, load_mnist

from harness.errors import DataError, InputError
from harness.grid import parse_grid
from harness.runner import run_cell


def write_idx(root, n=60, gz=True, split="train", rng=None):
    rng = rng or np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    prefix = "train" if split == "train" else "t10k"
    opener = gzip.open if gz else open
    suffix = ".gz" if gz else ""
    with opener(root / f"{prefix}-images-idx3-ubyte{suffix}", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
    with opener(root / f"{prefix}-labels-idx1-ubyte{suffix}", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + labels.tobytes())
    return images, labels


@pytest.mark.parametrize("gz", [True, False])
def test_reads_idx_files_gzipped_or_not(tmp_path, gz):
    images, labels = write_idx(tmp_path, gz=gz)
    X, y = load_mnist.__wrapped__(str(tmp_path), "train")
    np.testing.assert_array_equal(X, images.reshape(60, 784).astype(float))
    np.testing.assert_array_equal(y, labels)
    assert check_files(tmp_path) == 60


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*not found"):
        check_files(tmp_path)


def test_truncated_file_names_the_file(tmp_path):
    write_idx(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*truncated or corrupt"):
        load_mnist.__wrapped__(str(tmp_path), "train")


def test_bad_magic_and_corrupt_gzip(tmp_path):
    write_idx(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x803, 60))
    with pytest.raises(DataError, match="magic number 0x00000803"):
        check_files(tmp_path)
    other = tmp_path / "gz"
    other.mkdir()
    write_idx(other, gz=True)
    (other / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match="cannot read"):
        check_files(other)


GRID = """
name: m
experiments:
  - problem: rfm
    params: {{dataset: mnist, data_dir: {root}, n_train: 30, n_test: {n_test}, n_features: 16}}
    strategies: [min_norm]
"""


def test_grid_checks_the_files_before_anything_runs(tmp_path):
    write_idx(tmp_path)
    with pytest.raises(InputError, match="n_train: n_train \\+ n_test = 130 is more than the 60"):
        parse_grid(GRID.format(root=tmp_path, n_test=100), "m.yaml")
    with pytest.raises(InputError, match="not a folder"):
        parse_grid(GRID.format(root=tmp_path / "nope", n_test=10), "m.yaml")


def test_an_rfm_cell_runs_on_the_fixture(tmp_path, monkeypatch):
    write_idx(tmp_path)
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))
    text = GRID.format(root="null", n_test=20)
    cell = parse_grid(text, "m.yaml").cells[0]
    result = run_cell(cell)
    assert result.status == "ok", result.error
    assert result.metrics["train_mse"] < result.metrics["test_mse"]
