"""sbatch scripts as `harness submit` renders them: golden files, quoting, flag checks.

These need no Slurm. The golden files pin every line of the three modes' scripts; after an
intended change, rewrite them with HARNESS_UPDATE_GOLDEN=1 and review the diff.
"""

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from harness.errors import InputError
from harness.grid import load_grid
from harness.shard import Shard
from harness.slurm.directives import Request, sbatch_directives
from harness.slurm.scripts import ScriptInputs, render
from tests.conftest import ROOT, run_cli

GOLDEN = Path(__file__).parent / "golden" / "slurm"
ODD = Path("/scratch/my results/it's \"here\"")  # spaces, both quote characters

CASES = {
    "array": Request(mode="array", cpus_per_task=4, gpus_per_node=1, mem="16G",
                     time="02:00:00", partition="gpu", account="proj-1", max_parallel=8,
                     shards=50),
    "ray": Request(mode="ray", nodes=4, cpus_per_task=32, gpus_per_node=8, time="1-00:00:00",
                   warn_s=300),
    "mpi": Request(mode="mpi", nodes=2, gpus_per_node=4, cpus_per_task=8,
                   extra=["--qos=high"]),
}


def inputs(out: Path = ODD) -> ScriptInputs:
    return ScriptInputs(grid_name="demo", grid_file=Path("/home/me/grids/demo.yaml"),
                        out=out, cells=210, harness="harness",
                        ray="ray", setup=("module load cuda/12.4",))


@pytest.mark.parametrize("mode", sorted(CASES))
def test_rendered_script_matches_golden_file(mode):
    text = render(CASES[mode], inputs())
    golden = GOLDEN / f"{mode}.sbatch"
    if os.environ.get("HARNESS_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("mode", sorted(CASES))
def test_script_is_valid_bash_and_paths_survive_quoting(mode, tmp_path):
    script = tmp_path / "job.sbatch"
    script.write_text(render(CASES[mode], inputs()))
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    # The variable lines, evaluated by bash, give back the exact paths.
    assigns = [line for line in script.read_text().splitlines()
               if line.split("=")[0] in ("HARNESS", "GRID", "OUT")]
    shown = subprocess.run(["bash", "-c", "\n".join([*assigns, 'printf "%s\\n" "$OUT" "$GRID"'])],
                           capture_output=True, text=True)
    assert shown.stdout.splitlines() == [str(ODD), "/home/me/grids/demo.yaml"]


def test_output_directive_quotes_the_path_for_sbatch():
    lines = sbatch_directives(CASES["array"], job_name="harness-demo",
                              log_pattern=str(ODD / "x.out"))
    assert '#SBATCH --output="/scratch/my results/it\'s \\"here\\"/x.out"' in lines


def test_resource_flags_become_directives():
    array = sbatch_directives(CASES["array"], job_name="j", log_pattern="l")
    for want in ("--array=0-49%8", "--cpus-per-task=4", "--gpus-per-task=1", "--mem=16G",
                 "--time=02:00:00", "--partition=gpu", "--account=proj-1", "--requeue",
                 "--signal=B:USR1@120", "--nodes=1", "--ntasks=1"):
        assert f"#SBATCH {want}" in array
    mpi = sbatch_directives(CASES["mpi"], job_name="j", log_pattern="l")
    for want in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-task=1", "--qos=high"):
        assert f"#SBATCH {want}" in mpi
    ray = sbatch_directives(CASES["ray"], job_name="j", log_pattern="l")
    for want in ("--nodes=4", "--ntasks-per-node=1", "--gpus-per-node=8",
                 "--signal=B:USR1@300"):
        assert f"#SBATCH {want}" in ray


@pytest.mark.parametrize("kwargs, message", [
    ({"mode": "array", "nodes": 2}, "--nodes 2 is not allowed; allowed: 1 with --mode array"),
    ({"mode": "ray", "time": "2h"}, "--time '2h' is not allowed; allowed: minutes, MM:SS"),
    ({"mode": "mpi", "mem": "16GB"}, "--mem '16GB' is not allowed"),
    ({"mode": "mpi", "partition": "gpu; rm -rf /"}, "--partition 'gpu; rm -rf /' is not"),
    ({"mode": "mpi", "extra": ["qos=high"]}, "--sbatch 'qos=high' is not allowed"),
    ({"mode": "batch"}, "--mode 'batch' is not allowed; allowed: array | ray | mpi"),
])
def test_bad_resource_values_are_input_errors(kwargs, message):
    with pytest.raises(InputError, match="harness submit") as err:
        Request(**kwargs)
    assert message in str(err.value)


def test_shards_split_the_cells_disjointly_and_completely_keeping_blocks_whole(write_grid):
    grid = load_grid(write_grid("name: s\nseeds: [0, 1, 2, 3, 4, 5, 6]\nexperiments:\n"
                                "  - problem: probe\n    params: {size: [1, 2]}\n"
                                "    strategies: [probe, {probe: {steps: 5}}]\n"))
    items = grid.cells  # 14 blocks of 2 cells
    parts = [Shard(i, 5).select(items) for i in range(5)]
    assert sorted(c.run_order for p in parts for c in p) == list(range(28))
    assert [c.block for c in parts[2]] == [2, 2, 7, 7, 12, 12]
    for part in parts:  # both cells of a block (one instance and seed) in the same shard
        assert all(sum(c.block == x.block for c in part) == 2 for x in part)
    assert Shard.parse("3/8") == Shard(3, 8)
    for bad in ("8/8", "-1/2", "1/0", "a/b", "3"):
        with pytest.raises(InputError, match="allowed: I/N"):
            Shard.parse(bad)


def test_submit_dry_run_writes_the_script_and_submits_nothing(write_grid, tmp_path):
    grid = write_grid("name: tiny\nseeds: [0, 1, 2]\nexperiments:\n  - problem: probe\n"
                      "    strategies: [probe, {probe: {steps: 1, cpus: 3, gpus: 1.5}}]\n")
    out = tmp_path / "a b"
    proc = run_cli("submit", str(grid), "--out", str(out), "--shards", "8", "--dry-run",
                   "--setup", "echo hello")
    assert proc.returncode == 0, proc.stderr
    script = out / "slurm" / "array-1.sbatch"
    text = script.read_text()
    assert "#SBATCH --array=0-5" in text  # never more tasks than cells
    # an array task holds the largest cell: its cores and (whole) GPUs
    assert "#SBATCH --cpus-per-task=3" in text and "#SBATCH --gpus-per-task=2" in text
    assert "\necho hello\n" in text and f"OUT={shlex.quote(str(out))}" in text
    assert not (out / "slurm" / "jobs.json").exists()
    assert "nothing submitted" in proc.stdout
    # the job runs a snapshot of the grid: editing the file afterwards changes nothing
    snapshot = out / "slurm" / "grid-1.yaml"
    assert f"GRID={shlex.quote(str(snapshot))}" in text
    original = grid.read_text()
    grid.write_text(original.replace("[0, 1, 2]", "[0, 1, 2, 3, 4]"))
    assert snapshot.read_text() == original


@pytest.mark.parametrize("args, message", [
    (["--mode", "array", "--nodes", "3"], "--nodes 3 is not allowed"),
    (["--cpus-per-task", "0"], "argument --cpus-per-task: '0' is not allowed"),
    (["--time", "soon"], "--time 'soon' is not allowed"),
    (["--setup", "a\nb"], "--setup 'a\\nb' is not allowed"),
    (["--until-conclusive"], "use --mode ray (or mpi), not array shards"),
    (["--mode", "ray", "--until-conclusive"], "--until-conclusive needs --time, or a run-time"),
    (["--mode", "ray", "--until-conclusive", "--budget", "2cpu-h"],
     "--until-conclusive needs --time, or a run-time"),
    (["--budget", "30m"], "--budget applies only with --until-conclusive"),
])
def test_submit_bad_flags_exit_2_and_write_nothing(write_grid, tmp_path, args, message):
    grid = write_grid("name: tiny\nexperiments:\n  - problem: probe\n    strategies: [probe]\n")
    out = tmp_path / "o"
    proc = run_cli("submit", str(grid), "--out", str(out), *args)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_submit_without_slurm_is_an_input_error(write_grid, tmp_path):
    grid = write_grid("name: tiny\nexperiments:\n  - problem: probe\n    strategies: [probe]\n")
    env = {**os.environ, "PATH": "/nonexistent"}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "submit",
                           str(grid), "--out", str(tmp_path / "o")], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "sbatch is not on PATH: no Slurm client here" in proc.stderr
    assert not (tmp_path / "o").exists()


def test_submit_until_conclusive_is_one_job_that_loops(write_grid, tmp_path):
    grid = write_grid("name: tiny\nseeds: [0, 1, 2]\nexperiments:\n  - problem: probe\n"
                      "    strategies: [probe]\n")
    out = tmp_path / "o"
    proc = run_cli("submit", str(grid), "--out", str(out), "--mode", "ray", "--dry-run",
                   "--until-conclusive", "--budget", "30m", "--max-seeds", "6",
                   "--claims", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    text = (out / "slurm" / "ray-1.sbatch").read_text()
    run_line = next(line for line in text.splitlines() if line.startswith("run_main "))
    assert run_line.endswith(f"--until-conclusive --max-seeds 6 --batch 2 --budget 30m "
                             f"--claims {shlex.quote(str(tmp_path))}"), run_line
    # 30 min of budget + 120 s of start-up + 120 s of --warn: 34 minutes
    assert "#SBATCH --time=0:34:00" in text
