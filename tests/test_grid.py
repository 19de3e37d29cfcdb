"""Grid spec: expansion into cells, stable identities, and one-line errors for bad input."""

import pytest

from harness import registry
from harness.cell import cell_id_of
from harness.errors import InputError
from harness.grid import load_grid, parse_grid

GOOD = """
name: g
seeds: [0, 1]
defaults: {timeout_s: 60}
experiments:
  - problem: probe
    params: {size: [16, 32, 64]}
    strategies:
      - probe
      - probe: {fail: [raise, nan]}
      - probe: {steps: 5, timeout_s: 5, cpus: 2}
"""


def variant(cell):
    """Which of GOOD's four strategy variants ``cell`` is."""
    return cell.strategy_params["fail"], cell.strategy_params["steps"]


def test_cartesian_expansion_and_defaults():
    grid = parse_grid(GOOD, "good.yaml")
    assert len(grid.cells) == 3 * (1 + 2 + 1) * 2
    longer = [c for c in grid.cells if c.strategy_params["steps"] == 5]
    assert {c.resources.timeout_s for c in longer} == {5.0}
    assert {c.resources.cpus for c in longer} == {2}
    failing = [c for c in grid.cells if c.strategy_params["fail"] != "none"]
    assert {c.resources.timeout_s for c in failing} == {60.0}
    # defaults are filled in, so identical computations get identical parameters
    assert all(c.strategy_params["steps"] == 3 for c in failing)
    assert grid.swept == {"p_size", "s_fail", "s_steps"}


def test_cell_id_is_stable_and_ignores_resources():
    def first_plain(grid):
        return next(c for c in grid.cells if variant(c) == ("none", 3))

    a = first_plain(parse_grid(GOOD, "a.yaml"))
    b = first_plain(parse_grid(GOOD.replace("timeout_s: 60", "timeout_s: 999"), "b.yaml"))
    assert b.resources.timeout_s == 999
    assert a.cell_id == b.cell_id and a.run_order == b.run_order  # the same order, too
    # the id is a hash of the canonical identity, pinned so that it cannot drift silently
    assert a.cell_id == cell_id_of(
        "probe", {"size": 16}, "probe",
        {"fail": "none", "sleep_s": 0.0, "spin_s": 0.0, "steps": 3, "scale": 0.5,
         "wait_for": ""}, 0)
    assert a.cell_id == "532d1b6cf79a8cd7"


def test_where_the_data_lie_changes_no_cell_id_and_no_order():
    """A parameter that says where data lie (``identity=False``) is not part of the cell's
    identity, nor of its block's drawn order. rfm's ``data_dir``: the probe has no such
    parameter."""
    grid = ("name: where\nexperiments:\n  - problem: rfm\n    params: {n_features: [16, 32]}\n"
            "    strategies: [min_norm, {tikhonov: {select: oracle}}]\n")
    here = parse_grid(grid, "a.yaml").cells
    moved = parse_grid(grid.replace("{n_features", "{data_dir: /somewhere/else, n_features"),
                       "b.yaml", check_inputs=False).cells
    assert {c.problem_params["data_dir"] for c in moved} == {"/somewhere/else"}
    assert [(c.cell_id, c.run_order) for c in here] == [(c.cell_id, c.run_order)
                                                        for c in moved]


def test_paired_order_runs_each_instance_and_seed_as_one_block_in_a_recorded_order():
    grid = parse_grid(GOOD, "good.yaml")
    cells = grid.cells
    assert [c.run_order for c in cells] == list(range(len(cells)))
    blocks = [c.block for c in cells]
    assert blocks == sorted(blocks) and len(set(blocks)) == 3 * 2  # sizes × seeds
    for b in set(blocks):  # one instance and seed per block, every strategy variant in it
        members = [c for c in cells if c.block == b]
        assert len({(c.problem_params["size"], c.seed) for c in members}) == 1
        assert len(members) == 4
    assert [c.seed for c in cells] == sorted(c.seed for c in cells)  # seed by seed
    orders = {tuple(variant(c) for c in cells if c.block == b) for b in set(blocks)}
    assert len(orders) > 1  # the strategies' order is drawn per block
    again = parse_grid(GOOD, "good.yaml").cells
    assert [c.cell_id for c in again] == [c.cell_id for c in cells]  # and is the same
    file_order = parse_grid("order: file\n" + GOOD, "good.yaml").cells
    assert [variant(c) for c in file_order[:6]] == [("none", 3)] * 6  # seeds innermost
    with pytest.raises(InputError, match=r"order.*'random' is not an order; allowed: paired"):
        parse_grid("order: random\n" + GOOD, "good.yaml")


def test_seeds_give_different_ids():
    ids = [c.cell_id for c in parse_grid(GOOD).cells]
    assert len(ids) == len(set(ids))


FOREIGN = next(c for c in registry.strategies().values() if c.family != "probe")
BAD = {
    "unknown problem": ("experiments:\n  - problem: nope\n    strategies: [probe]",
                        "experiments[0].problem",
                        "valid: " + ", ".join(registry.problems())),
    "unknown strategy": ("experiments:\n  - problem: probe\n    strategies: [lasso]",
                         "strategies[0]", "valid for probe: " + ", ".join(
                             n for n, c in registry.strategies().items() if c.family == "probe")),
    "wrong family": (f"experiments:\n  - problem: probe\n    strategies: [{FOREIGN.name}]",
                     "strategies[0]", f"is for {FOREIGN.family} problems, not probe"),
    "unknown parameter": ("experiments:\n  - problem: probe\n    params: {sizes: 4}\n"
                          "    strategies: [probe]", "params.sizes", "valid: size"),
    "out of range": ("experiments:\n  - problem: probe\n    params: {size: 0}\n"
                     "    strategies: [probe]", "params.size",
                     "0 is out of range; allowed: an integer ≥ 1"),
    "wrong type": ("experiments:\n  - problem: probe\n    params: {size: many}\n"
                   "    strategies: [probe]", "params.size", "wrong type"),
    "bad choice": ("experiments:\n  - problem: probe\n    strategies:\n"
                   "      - probe: {fail: rasie}", "(probe).fail",
                   "allowed: one of none, raise, nan, diverge, oom, crash"),
    "empty list": ("experiments:\n  - problem: probe\n    params: {size: []}\n"
                   "    strategies: [probe]", "params.size", "empty list"),
    "repeated value": ("experiments:\n  - problem: probe\n    params: {size: [8, 8]}\n"
                       "    strategies: [probe]", "params.size", "repeats a value"),
    "duplicate experiment": ("experiments:\n  - problem: probe\n    strategies: [probe]\n"
                             "  - problem: probe\n    strategies: [probe]",
                             "experiments[1]", "duplicate cell"),
    # A plug-in's own rules (Plugin.check, Problem.check_inputs) surface as one line too:
    # rfm's, as the probe has none.
    "too many images": ("experiments:\n  - problem: rfm\n    params: {n_train: 1800}\n"
                        "    strategies: [min_norm]", "params.n_train", "1797 digits"),
    "cross-parameter rule": ("experiments:\n  - problem: rfm\n    strategies:\n"
                             "      - tikhonov: {select: fixed}", "(tikhonov).lam",
                             "select: fixed needs a value"),
    "missing data dir": ("experiments:\n  - problem: rfm\n    params: {dataset: mnist}\n"
                         "    strategies: [min_norm]", "params", "needs its files"),
    "bad seeds": ("seeds: [1, -1]\nexperiments:\n  - problem: probe\n    strategies: [probe]",
                  "seeds", "integers ≥ 0"),
    "bad device": ("defaults: {device: gpu}\nexperiments:\n  - problem: probe\n"
                   "    strategies: [probe]", "defaults.device", "auto, cpu, cuda"),
    "unknown top key": ("experiment: []", "experiment", "unknown key; valid: name"),
    "no experiments": ("experiments: []", "experiments", "non-empty list"),
    "yaml syntax": ("experiments: [\n  - problem: probe", "line", "YAML error"),
    "duplicate key": ("experiments:\n  - problem: probe\n    problem: probe\n"
                      "    strategies: [probe]", "line 4", "given twice"),
    "python tag": ("experiments: !!python/object/apply:os.system ['true']", "line 2",
                   "YAML error"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_grids_raise_one_line_naming_file_and_key(case, monkeypatch):
    monkeypatch.delenv("HARNESS_DATA", raising=False)
    body, where, what = BAD[case]
    text = body if body.startswith("name:") else "name: bad\n" + body
    with pytest.raises(InputError) as err:
        parse_grid(text, "bad.yaml")
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("bad.yaml: ")
    assert where in message and what in message, message


def test_missing_grid_file(tmp_path):
    with pytest.raises(InputError, match="no such grid file"):
        load_grid(tmp_path / "nope.yaml")


def test_demo_grid_is_valid():
    grid = load_grid("grids/demo.yaml")
    assert len(grid.cells) == 10 * 7 * 3 + (2 + 2 + 6 + 2 + 2) * 3  # rfm; node and sep
    assert {c.problem_params.get("dataset") for c in grid.cells
            if c.problem in ("rfm", "autoencoder")} == {"mnist5k"}


def test_paper_hybrid_mnist5k_grid_is_valid():
    grid = load_grid("grids/paper-hybrid-rfm-mnist5k.yaml")
    assert len(grid.cells) == 15 * 9 * 3
    hybrids = {(c.strategy_params["regparam"], c.strategy_params["stop"])
               for c in grid.cells if c.strategy == "hybrid"}
    assert hybrids == {("gcv_full", "none"), ("gcv", "gcv"), ("wgcv", "gcv"), ("gcv", "none")}
    widths = {c.problem_params["n_features"] for c in grid.cells}
    assert {2**k for k in range(4, 14)} <= widths and 1024 in widths


def test_paper_slimtrain_grid_is_valid():
    grid = load_grid("grids/paper-slimtrain.yaml")
    assert len(grid.cells) == 304 and len({c.cell_id for c in grid.cells}) == 304
    lr = [c for c in grid.cells if c.problem == "cdr" and c.strategy_params.get("r") == 5
          and c.strategy_params.get("select") == "sgcv"]
    assert {c.strategy_params["lr"] for c in lr} == {1e-3, 1e-2, 1e-1}


def test_paper_do_vs_od_grids_are_valid(tmp_path, monkeypatch):
    standins = load_grid("grids/paper-do-vs-od-standins.yaml")
    assert len(standins.cells) == 3 * (3 + 2 + 5 * 2)
    for name in ("power", "gas", "hepmass", "miniboone", "BSDS300"):  # the files' folders
        (tmp_path / name).mkdir()
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path))
    with pytest.raises(InputError, match=r"power/data\.npy"):  # checked before anything runs
        load_grid("grids/paper-do-vs-od.yaml")
