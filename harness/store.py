"""The results store: Parquet datasets ``<out>/cells/`` and ``<out>/history/``.

Each finished cell attempt, whatever its status, is written at once as its own pair of
files (history first, then the cells row), each through a temporary file that is fsynced
and renamed, so a crash at any moment leaves only complete files and loses no finished
cell. At the end of a run the small files are compacted into one file per folder; rows are
keyed by (cell_id, attempt), and readers drop the duplicates a crash during compaction can
leave. See docs/results.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .atomic import replacing
from .errors import InputError
from .schema import HISTORY_SCHEMA, cells_schema, cells_table

T = TypeVar("T")
CELLS, HISTORY = "cells", "history"
_TMP_PREFIX = "."  # pyarrow.dataset and DuckDB's *.parquet globs skip these


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` so that ``path`` is either absent or complete, and stays
    so across a power cut."""
    with replacing(path, durable=True) as tmp:
        pq.write_table(table, tmp)


def _parquet_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.parquet") if not p.name.startswith(_TMP_PREFIX))


_ATTEMPT_FILE = re.compile(r"^(?P<cell>[0-9a-f]{16})-a(?P<attempt>\d+)\.parquet$")


def _keys(path: Path) -> set[tuple[str, int]]:
    """The (cell_id, attempt) pairs in a file: from its name for a one-attempt file, else
    from its key columns."""
    match = _ATTEMPT_FILE.match(path.name)
    if match:
        return {(match["cell"], int(match["attempt"]))}
    t = pq.read_table(path, columns=["cell_id", "attempt"])
    return set(zip(t.column("cell_id").to_pylist(), t.column("attempt").to_pylist(),
                   strict=True))


def _reading(read: Callable[[], T]) -> T:
    """``read()``, again if a file vanished under it: another shard's driver merged its
    files in between (the merged file holds the same rows)."""
    for attempt in range(4):
        try:
            return read()
        except FileNotFoundError:
            time.sleep(0.05 * (attempt + 1))
    return read()


def _read(folder: Path, schema: pa.Schema) -> pa.Table:
    """All files of a folder as one table of ``schema`` (older files' missing columns are
    null). Each (cell_id, attempt) is taken from one file only: the rows a crash during
    compaction can leave twice (in the merged file and in a not-yet-deleted small one)
    are dropped."""
    files = _parquet_files(folder)
    if not files:
        return schema.empty_table()
    schema = _with_old_columns(schema, files)
    seen: set[tuple[str, int]] = set()
    owned: list[tuple[Path, set[tuple[str, int]]]] = []
    clash = False
    for p in sorted(files, key=lambda p: not p.name.startswith("part-")):
        keys = _keys(p)
        clash |= not seen.isdisjoint(keys)
        owned.append((p, keys - seen))
        seen |= keys
    if not clash:  # the common case: one dataset scan
        return ds.dataset([str(p) for p in files], format="parquet", schema=schema).to_table()
    parts = []
    for p, keys in owned:
        part = ds.dataset(str(p), format="parquet", schema=schema).to_table()
        pairs = zip(part.column("cell_id").to_pylist(), part.column("attempt").to_pylist(),
                    strict=True)
        parts.append(part.filter(pa.array([pair in keys for pair in pairs])))
    return pa.concat_tables(parts)


def _with_old_columns(schema: pa.Schema, files: list[Path]) -> pa.Schema:
    """``schema`` plus the columns that files written by another version hold and this
    version no longer declares (a plug-in's metric since renamed or removed), so reading
    or compacting an old folder loses none of its data."""
    known, extra = set(schema.names), []
    for p in files:
        for f in pq.read_schema(p):
            if f.name not in known:
                known.add(f.name)
                extra.append(f)
    return pa.schema([*schema, *extra], metadata=schema.metadata) if extra else schema


def _lock_name(shard: str | None) -> str:
    """The lock file of the folder, or of shard ``"I/N"``."""
    return ".lock" if shard is None else ".lock-shard-" + shard.replace("/", "-of-")


class Store:
    """Reads and writes one output folder."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.cells_dir = self.out / CELLS
        self.history_dir = self.out / HISTORY

    def create(self) -> None:
        for d in (self.cells_dir, self.history_dir, self.out / "runs", self.out / "logs"):
            d.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def lock(self, shard: str | None = None) -> Iterator[None]:
        """Exclusive use of the folder by one driver; a second one fails with exit code 2.

        With ``shard`` (e.g. ``"3/8"``: one Slurm array task) the folder is shared with the
        drivers of the other shards and only that shard is exclusive."""
        self.out.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            if shard is None:
                stack.enter_context(self._flock(".lock", fcntl.LOCK_EX))
            else:
                stack.enter_context(self._flock(".lock", fcntl.LOCK_SH))
                stack.enter_context(self._flock(_lock_name(shard), fcntl.LOCK_EX))
            yield

    def lock_holder(self, shard: str | None = None) -> str | None:
        """Who holds the folder's lock (``"pid N on HOST"``, as the driver wrote it), or
        None when no live driver does: a driver killed with ``kill -9`` releases its lock
        with its process. ``shard``: the lock of that shard instead."""
        try:
            fd = os.open(self.out / _lock_name(shard), os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            # a shared probe fails only while a driver holds the lock exclusively
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.read(fd, 200).decode(errors="replace").strip() or "another process"
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    @staticmethod
    def holder_name() -> str:
        """How this process names itself in a lock it holds."""
        return f"pid {os.getpid()} on {os.uname().nodename}"

    @contextlib.contextmanager
    def _flock(self, name: str, mode: int) -> Iterator[None]:
        fd = os.open(self.out / name, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
                raise InputError(f"the folder is in use by {holder}; wait for it or use "
                                 "another --out", file=str(self.out)) from None
            if mode == fcntl.LOCK_EX:
                os.ftruncate(fd, 0)
                os.write(fd, self.holder_name().encode())
            yield
        finally:
            os.close(fd)

    # -- writing -----------------------------------------------------------------------
    def write_attempt(self, row: dict[str, Any], history: list[dict[str, Any]]) -> None:
        """Persist one cell attempt: its history rows, then its cells row."""
        stem = f"{row['cell_id']}-a{row['attempt']}"
        if history:
            write_atomic(pa.Table.from_pylist(history, schema=HISTORY_SCHEMA),
                         self.history_dir / f"{stem}.parquet")
        write_atomic(cells_table([row]), self.cells_dir / f"{stem}.parquet")

    def compact(self, cell_ids: set[str] | None = None) -> None:
        """Merge each folder's files into one (atomic); safe to interrupt at any point.

        With ``cell_ids`` only the one-attempt files of those cells are merged (into a new
        part file): what a shard's driver does, since other shards write at the same time."""
        for folder, schema in ((self.cells_dir, cells_schema()),
                               (self.history_dir, HISTORY_SCHEMA)):
            files = _parquet_files(folder)
            if cell_ids is not None:
                files = [p for p in files if (m := _ATTEMPT_FILE.match(p.name))
                         and m["cell"] in cell_ids]
            if len(files) <= 1:
                continue
            if cell_ids is None:
                table = _read(folder, schema)
            else:  # one-attempt files: their keys are distinct
                table = ds.dataset([str(p) for p in files], format="parquet",
                                   schema=_with_old_columns(schema, files)).to_table()
            table = table.sort_by([("cell_id", "ascending"), ("attempt", "ascending")])
            write_atomic(table, folder / f"part-{uuid.uuid4().hex[:12]}.parquet")
            for p in files:
                p.unlink()

    # -- reading -----------------------------------------------------------------------
    def cells(self, *, all_attempts: bool = False) -> pd.DataFrame:
        """The cells table; by default only the latest attempt of each cell."""
        df = _reading(lambda: _read(self.cells_dir, cells_schema())).to_pandas()
        if not all_attempts and len(df):
            df = df.sort_values(["cell_id", "attempt"]).groupby("cell_id").tail(1)
        return df.sort_values(["grid", "experiment", "problem", "strategy", "cell_id"],
                              kind="stable").reset_index(drop=True)

    def history(self, *, all_attempts: bool = False) -> pd.DataFrame:
        """The history table; by default only rows of each cell's latest attempt."""
        df = _reading(lambda: _read(self.history_dir, HISTORY_SCHEMA)).to_pandas()
        if not all_attempts and len(df):
            latest = df.groupby("cell_id")["attempt"].transform("max")
            df = df[df["attempt"] == latest]
        return df.reset_index(drop=True)

    def latest_status(self) -> dict[str, tuple[str, int]]:
        """cell_id → (status, attempt) of its latest attempt, read from the status columns
        only (cheap even for large folders)."""
        def read() -> pa.Table | None:
            files = _parquet_files(self.cells_dir)
            if not files:
                return None
            return ds.dataset([str(p) for p in files], format="parquet").to_table(
                columns=["cell_id", "attempt", "status"])

        table = _reading(read)
        if table is None:
            return {}
        out: dict[str, tuple[str, int]] = {}
        for cid, att, st in zip(*(table.column(c).to_pylist()
                                  for c in ("cell_id", "attempt", "status")), strict=True):
            if cid not in out or att > out[cid][1]:
                out[cid] = (st, att)
        return out


def load_cells(out: str | Path, *, all_attempts: bool = False) -> pd.DataFrame:
    """The cells table of output folder ``out`` as a DataFrame (latest attempt per cell
    unless ``all_attempts``)."""
    return Store(out).cells(all_attempts=all_attempts)


def load_history(out: str | Path, *, all_attempts: bool = False) -> pd.DataFrame:
    """The history table of ``out`` (rows of each cell's latest attempt unless
    ``all_attempts``)."""
    return Store(out).history(all_attempts=all_attempts)
