"""The tabular density sets of Papamakarios et al. (MAF, 2017) as preprocessed in their code
(zenodo 1161203, ``data.tar.gz``): POWER, GAS, HEPMASS, MINIBOONE, BSDS300, with their
splits and standardisation, read from ``<data_dir>/<folder>/…``:

- ``power``: ``power/data.npy``; shuffled (RandomState 42), two columns dropped, uniform
  noise added; the last 10% is test, the last 10% of the rest validation; standardised
  with the train + validation mean and std.
- ``gas``: ``gas/ethylene_CO.pickle``; Meth, Eth, Time dropped, then, one at a time, the
  first column correlated > 0.98 with another; standardised on all rows; split as power.
- ``hepmass``: ``hepmass/1000_train.csv`` and ``1000_test.csv``; signal rows (label 1)
  only; the test file's last column dropped; standardised with the training mean and std;
  features whose *smallest* value occurs more than 5 times dropped (the MAF code's rule);
  the last 10% of train is validation.
- ``miniboone``: ``miniboone/data.npy``; split as power; standardised as power.
- ``bsds300``: ``BSDS300/BSDS300.hdf5``; its ``train``/``validation``/``test`` datasets,
  not standardised (already centred patches).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.errors import DataError

FILES = {
    "power": ["power/data.npy"],
    "gas": ["gas/ethylene_CO.pickle"],
    "hepmass": ["hepmass/1000_train.csv", "hepmass/1000_test.csv"],
    "miniboone": ["miniboone/data.npy"],
    "bsds300": ["BSDS300/BSDS300.hdf5"],
}


@dataclass
class Splits:
    """Train, validation and test rows (N × d, float64)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    @property
    def dim(self) -> int:
        return self.train.shape[1]


def check_maf_files(root: Path, name: str) -> list[Path]:
    """The files of set ``name`` under ``root``; DataError naming the first missing one."""
    paths = [root / f for f in FILES[name]]
    for path in paths:
        if not path.is_file():
            raise DataError(f"{name}: file {str(path)!r} not found; the MAF sets come from "
                            f"zenodo.org/record/1161203 (data.tar.gz), unpacked so that "
                            f"{FILES[name][0]} lies in the data directory")
    return paths


def _tail_splits(data: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MAF's split: the last 10% is test, the last 10% of the rest validation."""
    n_test = int(0.1 * len(data))
    test, rest = data[-n_test:], data[:-n_test]
    n_val = int(0.1 * len(rest))
    return rest[:-n_val], rest[-n_val:], test


def _standardise(train, val, test, ref: np.ndarray) -> Splits:
    mu, sd = ref.mean(axis=0), ref.std(axis=0)
    return Splits((train - mu) / sd, (val - mu) / sd, (test - mu) / sd)


def load_power(paths: list[Path]) -> Splits:
    rng = np.random.RandomState(42)  # the legacy generator: MAF's exact shuffle and noise
    data = np.load(paths[0]).astype(np.float64)
    rng.shuffle(data)
    n = len(data)
    data = np.delete(np.delete(data, 3, axis=1), 1, axis=1)
    noise = np.hstack([0.001 * rng.rand(n, 1), 0.01 * rng.rand(n, 1), rng.rand(n, 3),
                       np.zeros((n, 1))])
    train, val, test = _tail_splits(data + noise)
    return _standardise(train, val, test, np.vstack([train, val]))


def load_gas(paths: list[Path]) -> Splits:
    import pandas as pd

    df = pd.read_pickle(paths[0]).drop(columns=["Meth", "Eth", "Time"])
    while True:  # drop, one at a time, the first column correlated > 0.98 with another
        counts = (df.corr() > 0.98).to_numpy().sum(axis=1)
        if not np.any(counts > 1):
            break
        df = df.drop(columns=df.columns[np.where(counts > 1)[0][0]])
    df = (df - df.mean()) / df.std()
    return Splits(*_tail_splits(df.to_numpy(dtype=np.float64)))


def load_hepmass(paths: list[Path]) -> Splits:
    import pandas as pd

    train, test = (pd.read_csv(p, index_col=False) for p in paths)
    train = train[train[train.columns[0]] == 1].drop(columns=train.columns[0])
    test = test[test[test.columns[0]] == 1].drop(columns=test.columns[0])
    test = test.drop(columns=test.columns[-1])  # the test file has one column too many
    train, test = train.to_numpy(dtype=np.float64), test.to_numpy(dtype=np.float64)
    mu, sd = train.mean(axis=0), train.std(axis=0, ddof=1)  # pandas' std, as MAF
    train, test = (train - mu) / sd, (test - mu) / sd
    # MAF drops features whose *smallest* value occurs more than 5 times.
    keep = [j for j in range(train.shape[1])
            if np.count_nonzero(train[:, j] == train[:, j].min()) <= 5]
    train, test = train[:, keep], test[:, keep]
    n_val = int(0.1 * len(train))
    return Splits(train[:-n_val], train[-n_val:], test)


def load_miniboone(paths: list[Path]) -> Splits:
    train, val, test = _tail_splits(np.load(paths[0]).astype(np.float64))
    return _standardise(train, val, test, np.vstack([train, val]))


def load_bsds300(paths: list[Path]) -> Splits:
    import h5py

    with h5py.File(paths[0], "r") as f:
        return Splits(*(np.asarray(f[k], dtype=np.float64)
                        for k in ("train", "validation", "test")))


LOADERS: dict[str, Callable[[list[Path]], Splits]] = {
    "power": load_power, "gas": load_gas, "hepmass": load_hepmass,
    "miniboone": load_miniboone, "bsds300": load_bsds300,
}


def load_maf(root: Path, name: str) -> Splits:
    """The standardised splits of MAF set ``name`` from the data directory ``root``."""
    paths = check_maf_files(root, name)
    try:
        return LOADERS[name](paths)
    except DataError:
        raise
    except Exception as err:  # a truncated or foreign file: say which, not a traceback
        raise DataError(f"{name}: cannot read {str(paths[0].parent)!r}: "
                        f"{type(err).__name__}: {err}") from None
