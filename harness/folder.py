"""The layout of an output folder: every file and folder that ``harness run``, ``submit``,
``status``, ``report`` and ``compare`` read or write in it, named here and nowhere else::

    DIR/
      grid.yaml  grid.cells.json   the grid's text, and the cells it expands to
      conclusive.json              run until conclusive: the design, each claim's looks
      cells/  history/             Parquet part files, part-<owner>-<random>.parquet
      journal/                     <owner>.<run_id>.<n>.jsonl: attempts not merged yet
      runs/                        <run_id>.json manifests; <run_id>.inflight.json while live
      logs/                        the workers' logs, failures.log
      slurm/                       jobs.json, grid-<n>.yaml, <mode>-<n>.sbatch, logs/
      damaged/                     files a reader could not read, set aside (never deleted)
      .lock  .lock-shard-I-of-N    the drivers' advisory locks
      report.md  report.html  figures/  tables/    harness report (or into its --out)
      compare.md  compare.html  figures/           harness compare (into NEW or its --out)

``owner`` is ``all`` for a run of the whole grid and ``shard-I-of-N`` for the driver of
shard I/N, which merges only its own journal and part files. Names starting with ``.``
are temporary or private: Parquet readers (pyarrow, DuckDB globs) skip them.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .shard import Shard

CELLS, HISTORY = "cells", "history"  # the two tables, one folder of part files each
JOURNAL = "journal"
PARQUET_KINDS = (CELLS, HISTORY)
_INFLIGHT = ".inflight.json"
# a part of one attempt, as versions before the journal wrote them: <cell_id>-a<n>.parquet
_ATTEMPT_FILE = re.compile(r"^(?P<cell>[0-9a-f]{16})-a(?P<attempt>\d+)\.parquet$")


def attempt_file_key(path: Path) -> tuple[str, int] | None:
    """``(cell_id, attempt)`` of a one-attempt part file, from its name; None for a
    part of any other kind."""
    match = _ATTEMPT_FILE.match(path.name)
    return (match["cell"], int(match["attempt"])) if match else None


def document_names(command: str) -> tuple[str, str]:
    """The Markdown and HTML file names ``harness report`` or ``harness compare``
    writes."""
    if command not in ("report", "compare"):
        raise ValueError(f"no document of {command!r}")
    return f"{command}.md", f"{command}.html"


def owner_tag(shard: Shard | None) -> str:
    """Who writes a journal segment or part file: ``all``, or ``shard-I-of-N``."""
    return "all" if shard is None else f"shard-{shard.index}-of-{shard.count}"


class _Under:
    """A fixed path under an output folder's root: ``folder.runs_dir`` is
    ``folder.root / "runs"``. The layout is the table of these in :class:`OutputFolder`."""

    def __init__(self, *parts: str):
        self.parts = parts

    def __get__(self, folder: OutputFolder | None, owner: type | None = None) -> Any:
        return self if folder is None else folder.root.joinpath(*self.parts)


@dataclass(frozen=True)
class OutputFolder:
    """The paths of one output folder (nothing is created until a writer asks)."""

    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    # The fixed paths, each named once.
    grid_file = _Under("grid.yaml")  # the grid's text (harness status expands it)
    cells_file = _Under("grid.cells.json")  # its cells: status then imports no plug-in
    looks_file = _Under("conclusive.json")  # a run until conclusive: design, claims, seeds
    cells_dir = _Under(CELLS)  # the tables' Parquet part files
    history_dir = _Under(HISTORY)
    journal_dir = _Under(JOURNAL)  # attempts not merged into Parquet yet
    damaged_dir = _Under("damaged")  # unreadable files, set aside (never deleted)
    runs_dir = _Under("runs")  # manifests and in-flight lists
    logs_dir = _Under("logs")
    failures_log = _Under("logs", "failures.log")  # tracebacks of failed cells
    slurm_dir = _Under("slurm")
    jobs_file = _Under("slurm", "jobs.json")  # the folder's Slurm submissions
    queue_cache = _Under("slurm", ".squeue.json")  # squeue's last answer, seconds old
    job_logs_dir = _Under("slurm", "logs")
    figures_dir = _Under("figures")  # harness report and compare
    tables_dir = _Under("tables")  # harness report's LaTeX tables

    def table_dir(self, kind: str) -> Path:
        """The folder of the ``cells`` or ``history`` Parquet parts."""
        if kind not in PARQUET_KINDS:
            raise ValueError(f"no table {kind!r}; tables: {PARQUET_KINDS}")
        return self.root / kind

    def is_results_folder(self) -> bool:
        """Whether ``harness run`` or ``submit`` made this folder (it has ``cells/``)."""
        return self.cells_dir.is_dir()

    def parts(self, kind: str, shard: Shard | None = None, *, any_owner: bool = True
              ) -> list[Path]:
        """The Parquet part files of a table, sorted; only ``shard``'s own when
        ``any_owner`` is False. Temporary files (``.name``) are not parts."""
        folder = self.table_dir(kind)
        if not folder.is_dir():
            return []
        prefix = "" if any_owner else f"part-{owner_tag(shard)}-"
        return sorted(p for p in folder.glob("*.parquet")
                      if not p.name.startswith(".") and p.name.startswith(prefix))

    def new_part(self, kind: str, shard: Shard | None, token: str) -> Path:
        """A new part file's path: ``part-<owner>-<token>.parquet``."""
        return self.table_dir(kind) / f"part-{owner_tag(shard)}-{token}.parquet"

    def segment(self, shard: Shard | None, run_id: str, number: int) -> Path:
        """Journal segment ``number`` of run ``run_id``."""
        return self.journal_dir / f"{owner_tag(shard)}.{run_id}.{number}.jsonl"

    def segments(self, shard: Shard | None = None, *, any_owner: bool = True) -> list[Path]:
        """The journal segments (only ``shard``'s own unless ``any_owner``), oldest first."""
        if not self.journal_dir.is_dir():
            return []
        pattern = "*.jsonl" if any_owner else f"{owner_tag(shard)}.*.jsonl"
        found = []
        for p in self.journal_dir.glob(pattern):
            try:
                found.append((p.stat().st_mtime_ns, p.name, p))
            except FileNotFoundError:  # merged and deleted while we looked
                continue
        return [p for _, _, p in sorted(found)]

    def set_aside(self, path: Path) -> Path:
        """Move damaged ``path`` into ``damaged/`` (as ``<its folder>-<name>``, numbered
        when taken) and return where it went; nothing is deleted or overwritten."""
        self.damaged_dir.mkdir(exist_ok=True)
        for n in range(1, 1000):
            target = self.damaged_dir / (f"{path.parent.name}-{path.name}"
                                         + (f".{n}" if n > 1 else ""))
            try:
                os.link(path, target)  # fails if the name is taken: no overwrite
            except FileExistsError:
                continue
            path.unlink()
            return target
        raise FileExistsError(f"{self.damaged_dir} holds too many copies of {path.name}")

    def damaged(self) -> list[Path]:
        """The files set aside as damaged so far."""
        return sorted(self.damaged_dir.iterdir()) if self.damaged_dir.is_dir() else []

    # -- runs -----------------------------------------------------------------------------
    def manifest(self, run_id: str) -> Path:
        """A run's manifest: how, where and by whom it ran."""
        return self.runs_dir / f"{run_id}.json"

    def inflight(self, run_id: str) -> Path:
        """The cells a run is running now (removed when it ends; left by ``kill -9``)."""
        return self.runs_dir / f"{run_id}{_INFLIGHT}"

    def run_ids(self) -> list[str]:
        """The runs that wrote a manifest, in name (= start time) order."""
        if not self.runs_dir.is_dir():
            return []
        return sorted(p.name[:-len(".json")] for p in self.runs_dir.glob("*.json")
                      if not p.name.endswith(_INFLIGHT) and not p.name.startswith("."))

    def manifests(self) -> list[dict[str, Any]]:
        """Every readable run manifest, oldest first; one a crash left unreadable (or
        that is not a manifest) is skipped."""
        found = []
        for run_id in self.run_ids():
            info = read_json(self.manifest(run_id))
            if isinstance(info, dict):
                found.append(info)
        return found

    def inflight_cells(self, run_id: str) -> list[str] | None:
        """The cell ids run ``run_id`` listed as in flight, or None (none listed, or the
        file is gone or unreadable)."""
        listed = read_json(self.inflight(run_id))
        return listed if isinstance(listed, list) else None

    # -- logs and locks -------------------------------------------------------------------
    def lock_file(self, shard: Shard | None = None) -> Path:
        """The advisory lock of the folder, or of one shard."""
        return self.root / (".lock" if shard is None else f".lock-{owner_tag(shard)}")

    # -- Slurm ----------------------------------------------------------------------------
    def grid_snapshot(self, number: int) -> Path:
        """The grid text submission ``number`` runs (edits after submitting change
        nothing)."""
        return self.slurm_dir / f"grid-{number}.yaml"

    def job_script(self, mode: str, number: int) -> Path:
        return self.slurm_dir / f"{mode}-{number}.sbatch"

    def job_log_pattern(self, array: bool) -> Path:
        """Slurm's ``--output`` pattern: one log per array task, or per job."""
        return self.job_logs_dir / ("%x-%A_%a.out" if array else "%x-%j.out")

    # -- outputs of harness report and compare --------------------------------------------
    def documents(self, command: str) -> tuple[Path, Path]:
        """The Markdown and HTML files ``harness report`` or ``harness compare`` writes."""
        md, html = document_names(command)
        return self.root / md, self.root / html

    def create(self) -> None:
        """The folders a run writes into."""
        for d in (self.cells_dir, self.history_dir, self.runs_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing, half written or not JSON (the
    state a crash can leave a file in)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None
