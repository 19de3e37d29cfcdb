"""The MAF loaders on small fixture files written here (one per format), the stand-ins, and
the errors for missing files."""

import numpy as np
import pandas as pd
import pytest
from harness.problems.cnf_tabular import CNFTabular
from harness.problems.datasets.maf import load_maf
from harness.problems.datasets.standins import MIXTURE_DIMS, load_standin, mixture_logpdf

from harness.errors import DataError
from harness.runner import run_cell
from tests.test_node_solvers import node_cell


def _rows(rng, n, d):
    return rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d) + rng.normal(size=d)


@pytest.fixture(scope="module")
def maf_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("maf")
    rng = np.random.default_rng(0)
    for name in ("power", "gas", "hepmass", "miniboone", "BSDS300"):
        (root / name).mkdir()
    np.save(root / "power" / "data.npy", _rows(rng, 1000, 8))
    np.save(root / "miniboone" / "data.npy", _rows(rng, 500, 5))
    gas = pd.DataFrame(_rows(rng, 400, 6), columns=[f"s{i}" for i in range(6)])
    gas["twin"] = gas["s2"] * 2 + 1e-4 * rng.normal(size=400)  # correlated > 0.98: dropped
    gas["Meth"], gas["Eth"], gas["Time"] = 1.0, 2.0, np.arange(400.0)
    gas.to_pickle(root / "gas" / "ethylene_CO.pickle")
    for split, n in (("train", 600), ("test", 300)):
        feats = _rows(rng, n, 4)
        feats[: n // 2, 3] = feats[:, 3].min() - 1  # a discrete-looking feature: dropped
        df = pd.DataFrame(feats, columns=["f0", "f1", "f2", "f3"])
        df.insert(0, "# label", (np.arange(n) % 3 != 0).astype(float))
        if split == "test":
            df["mass"] = 1.0  # the test file's extra column
        df.to_csv(root / "hepmass" / f"1000_{split}.csv", index=False)
    import h5py

    with h5py.File(root / "BSDS300" / "BSDS300.hdf5", "w") as f:
        for key, n in (("train", 300), ("validation", 50), ("test", 80)):
            f[key] = _rows(rng, n, 7)
    return root


def test_miniboone_split_and_standardisation(maf_dir):
    raw = np.load(maf_dir / "miniboone" / "data.npy")
    s = load_maf(maf_dir, "miniboone")
    assert (len(s.train), len(s.val), len(s.test)) == (405, 45, 50)
    ref = raw[:450]
    assert np.allclose(s.test, (raw[450:] - ref.mean(0)) / ref.std(0))
    assert np.allclose(np.vstack([s.train, s.val]).mean(0), 0, atol=1e-12)


def test_power_drops_two_columns_and_adds_noise(maf_dir):
    s = load_maf(maf_dir, "power")
    assert s.dim == 6 and (len(s.train), len(s.val), len(s.test)) == (810, 90, 100)
    assert np.allclose(np.vstack([s.train, s.val]).std(0), 1)
    again = load_maf(maf_dir, "power")
    assert np.array_equal(s.test, again.test)  # the fixed RandomState(42) shuffle


def test_gas_drops_labels_time_and_correlated_columns(maf_dir):
    s = load_maf(maf_dir, "gas")
    assert s.dim == 6  # seven sensor columns, one of the correlated pair dropped
    assert len(s.test) == 40 and len(s.val) == 36
    all_rows = np.vstack([s.train, s.val, s.test])
    assert np.allclose(all_rows.mean(0), 0, atol=1e-12)


def test_hepmass_keeps_signal_rows_and_continuous_features(maf_dir):
    s = load_maf(maf_dir, "hepmass")
    assert s.dim == 3  # f3 has its minimum repeated: dropped
    n_signal = int(np.sum(np.arange(600) % 3 != 0))
    assert len(s.train) + len(s.val) == n_signal and len(s.val) == int(0.1 * n_signal)
    assert len(s.test) == int(np.sum(np.arange(300) % 3 != 0))


def test_bsds300_reads_the_three_datasets(maf_dir):
    s = load_maf(maf_dir, "bsds300")
    assert (len(s.train), len(s.val), len(s.test), s.dim) == (300, 50, 80, 7)


def test_missing_and_corrupt_files_are_data_errors(maf_dir, tmp_path):
    with pytest.raises(DataError, match=r"power/data.npy"):
        CNFTabular(dataset="power", data_dir=str(tmp_path)).check_inputs()
    (tmp_path / "miniboone").mkdir()
    (tmp_path / "miniboone" / "data.npy").write_bytes(b"not numpy")
    with pytest.raises(DataError, match="miniboone"):
        load_maf(tmp_path, "miniboone")
    CNFTabular(dataset="gas", data_dir=str(maf_dir)).check_inputs()  # present: no error


def test_a_maf_cell_runs_from_the_data_directory(maf_dir):
    res = run_cell(node_cell("cnf_tabular", {
        "dataset": "miniboone", "data_dir": str(maf_dir), "iterations": 3, "num_blocks": 1,
        "hidden": 8, "depth": 1, "batch_size": 64, "val_every": 0,
    }, "disc_opt", {"step_size": 0.5}))
    assert res.status == "ok", res.traceback
    assert res.metrics["ref_nll"] is None and res.metrics["test_nll"] > 0


def test_standins_have_their_dimensions_and_a_true_density():
    digits, none = load_standin("digits63")
    assert digits.dim == 63 and none is None
    assert len(digits.train) + len(digits.val) + len(digits.test) == 1797
    for name, d in MIXTURE_DIMS.items():
        s, nll = load_standin(name)
        assert s.dim == d and len(nll) == len(s.test) == 2000
    # The true density integrates to one: a 1-d check of mixture_logpdf by quadrature.
    x = np.linspace(-30, 30, 20001)[:, None]
    p = np.exp(mixture_logpdf(x, np.array([0.3, 0.7]), np.array([[-1.0], [2.0]]),
                              [np.array([[0.5]]), np.array([[1.5]])]))
    assert np.trapezoid(p, x[:, 0]) == pytest.approx(1, abs=1e-9)
