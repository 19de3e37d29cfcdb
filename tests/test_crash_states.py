"""Every command on an output folder in every state a crash can leave: killed with
``kill -9`` mid-run, live (a run holding it), half compacted, requeued by Slurm, a torn
journal line, damaged files, a manifest cut short, nothing but ``cells/``.

For each state a fresh copy of the folder gets ``harness status``, ``harness report``,
``harness compare`` (against a finished folder of the same grid) and a resumed ``harness
run``. None may end in a traceback: each exits 0, or 2 with one line that names the file
and says what to do; the resumed run completes the grid, losing no finished cell."""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from harness.cli import main
from harness.folder import OutputFolder
from harness.store import Store, load_cells, load_history
from tests.conftest import HARNESS, ROOT, WAIT_S, held_grid, in_flight, wait_until

CELLS = 4  # 2 quick cells, 2 held in flight until released


def _run(grid: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([*HARNESS, "run", str(grid), "--out", str(out), "--backend",
                             "local", "--workers", "2", "--quiet"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The grid, its release file, a finished folder and one killed with ``kill -9``."""
    root = tmp_path_factory.mktemp("crash")
    release = root / "go"
    grid = root / "grid.yaml"
    grid.write_text(held_grid(release, quick=2, held=2, name="crash"))
    killed = root / "killed"
    proc = _run(grid, killed)
    try:
        wait_until("the quick cells written and the held ones in flight",
                   lambda: len(Store(killed).latest_status()) == 2
                   and len(in_flight(killed)) == 2, proc)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its workers
        proc.wait(timeout=WAIT_S)
    release.touch()
    finished = root / "finished"
    proc = _run(grid, finished)
    assert proc.wait(timeout=WAIT_S) == 0, proc.stderr.read()
    return {"grid": grid, "killed": killed, "finished": finished, "root": root}


def _killed(made, out: Path) -> None:
    shutil.copytree(made["killed"], out)


def _torn(made, out: Path) -> None:
    """Killed inside a journal write: its last line is cut short."""
    _killed(made, out)
    (segment,) = OutputFolder(out).segments()
    line = segment.read_bytes().splitlines(keepends=True)[-1]
    with open(segment, "ab") as f:
        f.write(line[: len(line) // 2])


def _half_compacted(made, out: Path) -> None:
    """Killed between writing the merged part files and deleting their sources: every row
    twice, and a temporary file beside them."""
    shutil.copytree(made["finished"], out)
    folder = OutputFolder(out)
    for kind in ("cells", "history"):
        (part,) = folder.parts(kind)
        shutil.copy(part, folder.new_part(kind, None, "copy00000000"))
        shutil.copy(part, part.with_name(f".{part.name}.1a2b3c4d.tmp"))


def _requeued(made, out: Path) -> None:
    """A Slurm array task killed on its node and requeued: the same job and shard ran
    twice; the first run's in-flight list was left behind."""
    _killed(made, out)
    folder = OutputFolder(out)
    (run_id,) = folder.run_ids()
    job = {"scheduler": "slurm", "slurm_job_id": "990001_0", "slurm_array_task": 0,
           "shard": "0/1"}
    info = json.loads(folder.manifest(run_id).read_text())
    folder.manifest(run_id).write_text(json.dumps({**info, **job}))
    later = run_id + "r"  # sorts after it: the requeued task's run, in flight now
    folder.manifest(later).write_text(json.dumps({**info, **job, "run_id": later}))
    folder.slurm_dir.mkdir(exist_ok=True)
    folder.jobs_file.write_text(json.dumps([{
        "job_id": "990001", "mode": "array", "shards": 1, "script": "slurm/array-1.sbatch",
        "submitted_at": info["started_at"]}]))


def _damaged_part(made, out: Path) -> None:
    """A half-copied part file among intact ones."""
    shutil.copytree(made["killed"], out)
    Store(out).compact()
    folder = OutputFolder(out)
    (part,) = folder.parts("cells")
    bad = folder.new_part("cells", None, "halfcopied00")
    bad.write_bytes(part.read_bytes()[:100])
    then = time.time() - 3600  # copied an hour ago (a file changed within the last
    os.utime(bad, (then, then))  # minute may still be being copied: never moved)


def _cut_manifest(made, out: Path) -> None:
    """Manifests a crash (or a copy) cut short, and a stray in-flight list."""
    _killed(made, out)
    folder = OutputFolder(out)
    (run_id,) = folder.run_ids()
    folder.manifest(run_id).write_text('{"run_id": "' + run_id)
    folder.manifest("20260101T000000Z-ffffff").write_text("[1, 2")
    folder.inflight("20260101T000000Z-ffffff").write_text('["not-a-cell"]')


def _bare(made, out: Path) -> None:
    """Killed after creating the folder, before its first manifest."""
    OutputFolder(out).create()


STATES = {"killed": _killed, "torn journal": _torn, "half compacted": _half_compacted,
          "requeued": _requeued, "damaged part": _damaged_part, "cut manifest": _cut_manifest,
          "bare": _bare}
COMMANDS = ("status", "report", "compare", "run")


def _call(capsys, *args: str) -> tuple[int, str, str]:
    """``harness ARGS`` in this process (an exception would fail the test with its
    traceback); its exit code, stderr (one line when the code is 2) and stdout."""
    code = main(list(args))
    out, err = capsys.readouterr()
    assert code in (0, 2), (args, code, err)
    assert "Traceback" not in err
    if code == 2:
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    return code, err, out


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("state", list(STATES))
def test_every_command_on_every_crash_state(made, state, command, tmp_path, capsys):
    out = tmp_path / "out"
    STATES[state](made, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    damaged = state == "damaged part"
    if command == "status":
        code, err, said = _call(capsys, "status", str(out), "--cells")
        if state in ("killed", "torn journal"):  # the killed run is named as such
            assert "was interrupted (killed, or its node lost) with 2 cell(s)" in said, said
    elif command == "report":
        code, err, _ = _call(capsys, "report", str(out))
        if not damaged:
            assert OutputFolder(out).documents("report")[1].exists()
    elif command == "compare":
        code, err, _ = _call(capsys, "compare", str(made["finished"]), str(out),
                             "--out", str(tmp_path / "cmp"))
    else:
        proc = subprocess.run([*HARNESS, "run", str(made["grid"]), "--out", str(out),
                               "--backend", "local", "--quiet"], cwd=ROOT,
                              capture_output=True, text=True, timeout=WAIT_S)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        code, err = 0, proc.stderr
        cells = load_cells(out)
        assert len(cells) == CELLS and (cells["status"] == "ok").all()
        assert (cells["attempt"] == 1).all()  # no finished cell was run again
        assert set(cells["cell_id"]) == set(load_cells(made["finished"])["cell_id"])
        folder = OutputFolder(out)  # the killed runs' in-flight lists are tidied away
        assert not [r for r in folder.run_ids() if folder.inflight(r).exists()]
        if state in ("killed", "torn journal"):
            killed = [m for m in folder.manifests() if "finished_at" not in m]
            assert len(killed) == 1 and killed[0]["interrupted"].startswith("found by ")
    if damaged:
        # the half-copied part is named in one line and set aside, never deleted
        (kept,) = OutputFolder(out).damaged()
        assert kept.read_bytes() == next(v for k, v in before.items() if "halfcopied" in
                                         k.name)
        expected = 0 if command == "run" else 2
        assert code == expected and "halfcopied00.parquet" in err, err
        assert "not a readable file (Parquet magic bytes not found" in err
    elif state == "bare" and command == "compare":  # nothing recorded: nothing to compare
        assert code == 2 and "no cell recorded in it (NEW)" in err, err
    else:
        assert code == 0, err
    # nothing the crash left was deleted, except what a resumed run merged or finished
    if command in ("status", "compare"):
        lost = [k for k in before if not (out / k).exists()]
        assert lost == ([next(k for k in before if "halfcopied" in k.name)] if damaged
                        else []), lost


@pytest.mark.slow
def test_every_command_on_a_live_folder(made, tmp_path, capsys):
    """A run holding the folder, its cells in flight: status, report and compare read what
    is recorded so far (the unmerged journal too); a second run is refused in one line."""
    release, out = tmp_path / "go", tmp_path / "out"
    grid = tmp_path / "grid.yaml"
    grid.write_text(held_grid(release, quick=2, held=2, name="crash"))
    proc = _run(grid, out)
    try:
        wait_until("2 cells written and 2 in flight", lambda: len(Store(out).latest_status())
                   == 2 and len(in_flight(out)) == 2, proc)
        assert main(["status", str(out), "--cells"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert sum(" running " in line for line in lines) == 2, lines
        assert _call(capsys, "report", str(out))[0] == 0
        assert _call(capsys, "compare", str(made["finished"]), str(out), "--out",
                     str(tmp_path / "cmp"))[0] == 0
        again = subprocess.run([*HARNESS, "run", str(grid), "--out", str(out), "--backend",
                                "local"], cwd=ROOT, capture_output=True, text=True,
                               timeout=WAIT_S)
        assert again.returncode == 2 and "the folder is in use by pid" in again.stderr
        assert len(again.stderr.strip().splitlines()) == 1, again.stderr
        release.touch()
        assert proc.wait(timeout=WAIT_S) == 0, proc.stderr.read()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    cells = load_cells(out)
    assert len(cells) == CELLS and (cells["status"] == "ok").all()


@pytest.mark.slow
def test_a_rerun_after_a_lost_cells_part_never_takes_the_old_history_for_its_own(made,
                                                                                  tmp_path):
    """The cells part is damaged, its history intact: the rerun's attempts take new
    numbers, so the history read with them is theirs, whichever part sorts first."""
    out = tmp_path / "out"
    shutil.copytree(made["finished"], out)
    folder = OutputFolder(out)
    (history,) = folder.parts("history")
    history.rename(folder.new_part("history", None, "000000000000"))  # sorts first
    (part,) = folder.parts("cells")
    part.write_bytes(part.read_bytes()[:200])
    then = time.time() - 3600
    os.utime(part, (then, then))
    old = {r.cell_id: r.wall_s for r in load_cells(made["finished"]).itertuples()}
    proc = subprocess.run([*HARNESS, "run", str(made["grid"]), "--out", str(out),
                           "--backend", "local", "--quiet"], cwd=ROOT, capture_output=True,
                          text=True, timeout=WAIT_S)
    assert proc.returncode == 0 and "warning: " in proc.stderr, proc.stderr
    cells = load_cells(out)
    assert len(cells) == CELLS and (cells["attempt"] == 2).all()
    assert {r.cell_id: r.wall_s for r in cells.itertuples()} != old
    history = load_history(out)
    assert set(history["attempt"]) == {2} and set(history["cell_id"]) == set(cells["cell_id"])
