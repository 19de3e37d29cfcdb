"""Placement: cells hold disjoint cores and GPUs on ``local`` and ``mpi`` (issue: a cell's
``cpus`` and ``gpus`` are honoured on every backend), and a cell larger than the node is
skipped with the reason."""

import os
import random
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from harness.cell import Resources
from harness.executors.mpi_placement import Hello, RankPlacer
from harness.grid import parse_grid
from harness.placement import Allocator, Node, too_large, usable_cores
from harness.store import load_cells
from tests.conftest import HARNESS as CLI
from tests.conftest import ROOT, WAIT_S, in_flight, wait_until
from tests.test_mpi import HARNESS, MPIEXEC


def grid_text(release: Path) -> str:
    """4 cells of 2 cores, 4 of 1 core held until ``release`` exists, and 2 cells larger
    than any node."""
    return f"""name: place
seeds: [0, 1, 2, 3]
defaults: {{timeout_s: 120}}
experiments:
  - problem: probe
    params: {{size: 10}}
    cpus: 2
    strategies:
      - probe: {{steps: 1, sleep_s: 0.2}}
  - problem: probe
    params: {{size: 10}}
    strategies:
      - probe: {{steps: 2, wait_for: "{release}"}}
  - problem: probe
    params: {{size: 10}}
    seeds: [0]
    strategies:
      - probe: {{steps: 3, cpus: 64}}
      - probe: {{steps: 4, gpus: 9}}
"""


@pytest.fixture
def two_cores():
    """This process (and so the driver, its workers and mpiexec's ranks) restricted to two
    cores, as on the CI machine, whatever this machine has; restored afterwards."""
    before = usable_cores()
    if len(before) < 2:
        pytest.skip("placement of two cells needs at least 2 usable cores")
    two = set(sorted(before)[:2])
    os.sched_setaffinity(0, two)
    yield ",".join(map(str, sorted(two)))
    os.sched_setaffinity(0, before)


def run_held(cmd: list[str], grid: Path, out: Path, release: Path
             ) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run ``cmd``; once two cells of 1 core are in flight at the same time, release them.
    Returns the finished process and the ids of the two cells seen running together."""
    one_core = {c.cell_id for c in parse_grid(grid.read_text(), str(grid)).cells
                if c.resources.cpus == 1}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    together: set[str] = set()

    def two_at_once() -> bool:
        now = set(in_flight(out)) & one_core
        if len(now) == 2:
            together.update(now)
        return len(together) == 2

    wait_until("two cells of 1 core in flight at once", two_at_once, proc)
    release.touch()
    stdout, stderr = proc.communicate(timeout=WAIT_S)
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr), together


def check_placement(df: pd.DataFrame, cores: str, together: set[str]) -> None:
    """The placement rule on a node of 2 cores (``cores``: "a,b"), from the rows and the
    two cells of 1 core that were seen running at the same time."""
    ran = df[df["status"] == "ok"]
    assert len(ran) == 8, df[["status", "error"]]
    iv = [(r.started_at, r.finished_at, r.cpus, set(r.cores.split(","))) for r in
          ran.itertuples()]
    overlaps = [(a, b) for i, a in enumerate(iv) for b in iv[i + 1:]
                if a[0] < b[1] and b[0] < a[1]]
    # a cell of 2 cores overlaps nothing, and holds both cores
    assert not [p for p in overlaps if 2 in (p[0][2], p[1][2])], overlaps
    assert (ran.loc[ran["cpus"] == 2, "cores"] == cores).all()
    # cells of 1 core run two at a time, on different cores
    assert (ran.loc[ran["cpus"] == 1, "cores"].str.split(",").str.len() == 1).all()
    pair = ran.set_index("cell_id").loc[sorted(together), "cores"]
    assert set(pair) == set(cores.split(",")), pair
    assert all(a[3].isdisjoint(b[3]) for a, b in overlaps)
    assert (ran["gpu_ids"] == "").all()  # gpus: 0 sees no GPU
    big = df[df["status"] == "skipped"].set_index("s_steps")["error"]
    assert big[3].startswith("Infeasible: asks for 64 CPUs;") and big[4].startswith(
        "Infeasible: asks for 9 GPUs;"), big


def test_local_places_cells_on_disjoint_cores(tmp_path, write_grid, two_cores):
    release, out = tmp_path / "go", tmp_path / "out"
    grid = write_grid(grid_text(release))
    proc, together = run_held([*CLI, "run", str(grid), "--out", str(out), "--backend",
                               "local", "--workers", "2", "--quiet"], grid, out, release)
    assert proc.returncode == 1, proc.stderr  # the two skipped cells are not ok
    assert "place: 10 cells (8 ok, 2 skipped)" in proc.stdout
    check_placement(load_cells(out), two_cores, together)


def test_mpi_places_cells_on_disjoint_cores(tmp_path, write_grid, two_cores):
    release, out = tmp_path / "go", tmp_path / "out"
    grid = write_grid(grid_text(release))
    proc, together = run_held([str(MPIEXEC), "-n", "3", str(HARNESS), "run", str(grid),
                               "--out", str(out), "--backend", "mpi", "--quiet"], grid, out,
                              release)
    df = load_cells(out)
    assert proc.returncode == 1, proc.stderr  # the two skipped cells are not ok
    check_placement(df, two_cores, together)
    assert set(df.loc[df["status"] == "ok", "rank"]) == {1, 2}


@pytest.mark.parametrize("seed", range(5))
def test_allocator_never_oversubscribes(seed):
    """Random take/give sequences against a plain count of what each core and GPU holds."""
    rng = random.Random(seed)
    node = Node(cores=tuple(range(8)), gpus=("0", "1", "2", "3"))
    alloc, held = Allocator(node), []
    for _ in range(400):
        if held and rng.random() < 0.45:
            alloc.give(held.pop(rng.randrange(len(held))))
            continue
        res = Resources(cpus=rng.randint(1, 4), gpus=rng.choice([0, 0.25, 0.5, 1, 2]))
        prefer = held[-1] if held and rng.random() < 0.5 else None
        where = alloc.take(res, prefer)
        if where is None:
            continue
        assert len(where.cores) == res.cpus and len(where.gpus) == (
            0 if res.gpus == 0 else max(1, int(res.gpus)))
        held.append(where)
        cores = [c for p in held for c in p.cores]
        assert len(cores) == len(set(cores)) and set(cores) <= set(node.cores)
        for g in node.gpus:
            assert sum(p.gpu_share for p in held if g in p.gpus) <= 1 + 1e-9
    for p in held:
        alloc.give(p)
    assert alloc.idle


def test_allocator_prefers_a_workers_gpu_and_packs_fractions():
    alloc = Allocator(Node(cores=(0, 1, 2, 3), gpus=("0", "1")))
    a = alloc.take(Resources(cpus=1, gpus=0.5))
    b = alloc.take(Resources(cpus=1, gpus=0.5))
    assert a.gpus == b.gpus == ("0",)  # fractions fill one GPU before opening the next
    whole = alloc.take(Resources(cpus=1, gpus=1))
    assert whole.gpus == ("1",) and alloc.take(Resources(cpus=1, gpus=0.5)) is None
    alloc.give(whole)
    again = alloc.take(Resources(cpus=1, gpus=1), prefer=whole)
    assert again.gpus == ("1",) and again.cuda_visible_devices == "1"
    assert alloc.take(Resources(cpus=1, gpus=1), allowed=("0",)) is None


def test_too_large_names_what_is_missing():
    assert too_large(Resources(cpus=2), 2, 0) is None
    assert too_large(Resources(cpus=3), 2, 0) == "asks for 3 CPUs; this node has 2"
    assert too_large(Resources(gpus=1.5), 4, 4) == (
        "asks for 1.5 GPUs; more than one GPU must be a whole number")


def test_mpi_ranks_share_gpus_only_when_they_see_the_same_ones():
    both = ("0", "1"), ("GPU-a", "GPU-b")
    shared = RankPlacer({1: Hello("n1", (0, 1), *both), 2: Hello("n1", (2, 3), *both)})
    two = shared.take(1, [_cell(gpus=2)], None)
    assert two is not None and shared.for_rank(1, two[1]).gpus == ("0", "1")
    assert shared.take(2, [_cell(gpus=1)], None) is None  # rank 1 holds both
    # Slurm binds a GPU to each task, and each calls its own "0": two GPUs, one per rank
    bound = RankPlacer({1: Hello("n1", (0,), ("0",), ("GPU-a",)),
                        2: Hello("n1", (1,), ("0",), ("GPU-b",))})
    assert bound.too_large(_cell(gpus=2).resources).startswith("asks for 2 GPUs")
    x = bound.take(1, [_cell(gpus=1)], None)
    y = bound.take(2, [_cell(gpus=1)], None)
    assert x and y and x[1].gpus == ("GPU-a",) and y[1].gpus == ("GPU-b",)
    assert bound.for_rank(1, x[1]).gpus == bound.for_rank(2, y[1]).gpus == ("0",)


def _cell(**resources):
    from harness.cell import make_cell

    return make_cell("probe", "probe", resources=Resources(**resources))
