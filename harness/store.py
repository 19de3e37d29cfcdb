"""The results store: the Parquet tables ``cells/`` and ``history/`` of an output folder
(:class:`harness.folder.OutputFolder` names every path).

Each finished cell attempt, whatever its status, is recorded at once as one durable line
of the run's journal (:mod:`harness.journal`): constant cost per cell, about a kilobyte on
disk, nothing lost on ``kill -9``. Every 10 000 attempts or 60 s, and at the end of the
run, the journal is merged into a Parquet part file (history first, then cells; each
written to a temporary file, fsynced and renamed), and at the end of an unsharded run all
part files into one. Readers here (``load_cells``, ``harness status``, reports) read the
Parquet files and the journal not yet merged; a plain Parquet reader sees an attempt once
it is merged. Rows are keyed by (cell_id, attempt), and readers drop the duplicates a
crash during a merge can leave. A file no reader can read (a half-copied folder, a full
disk) is moved to ``damaged/`` and named in one line, never deleted; the rest of the folder
reads without it. See docs/results.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from . import damage, journal
from .atomic import replacing
from .errors import InputError
from .folder import CELLS, HISTORY, JOURNAL, OutputFolder, attempt_file_key
from .schema import HISTORY_SCHEMA, cells_schema, core_cells_schema
from .shard import Shard

T = TypeVar("T")
KEY_ORDER = [("cell_id", "ascending"), ("attempt", "ascending")]  # of rows in a part file
# a journal segment is merged into Parquet after this many attempts or seconds
FLUSH_RECORDS, FLUSH_S = 10_000, 60.0


def write_atomic(table: pa.Table, path: Path) -> None:
    """Write ``table`` to ``path`` so that ``path`` is either absent or complete, and stays
    so across a power cut."""
    with replacing(path, durable=True) as tmp:
        pq.write_table(table, tmp)


def _keys(path: Path) -> set[tuple[str, int]]:
    """The (cell_id, attempt) pairs in a file: from its name for a one-attempt file, else
    from its key columns."""
    key = attempt_file_key(path)
    if key:
        return {key}
    return set(_key_pairs(pq.read_table(path, columns=["cell_id", "attempt"])))


def _reading(read: Callable[[], T]) -> T:
    """``read()``, again if a file vanished under it: another shard's driver merged its
    files in between (the merged file holds the same rows)."""
    for attempt in range(4):
        try:
            return read()
        except FileNotFoundError:
            time.sleep(0.05 * (attempt + 1))
    return read()


def _read(files: list[Path], schema: pa.Schema, unmerged: list[pa.Table] = ()) -> pa.Table:
    """Parquet ``files`` and the ``unmerged`` journal tables as one table of
    ``schema`` (older files' missing columns are null, columns this version no longer
    declares are kept). Each (cell_id, attempt) is taken from one source only: the rows a
    crash during a merge can leave twice (in the merged file and in a not-yet-deleted
    source) are dropped, the merged file's copy kept."""
    if not files and not unmerged:
        return schema.empty_table()
    schema = _with_old_columns(schema, files, unmerged)
    seen: set[tuple[str, int]] = set()
    owned: list[tuple[Path | pa.Table, set[tuple[str, int]]]] = []
    clash = False
    sources = [*sorted(files, key=lambda p: not p.name.startswith("part-")), *unmerged]
    for source in sources:
        keys = _keys(source) if isinstance(source, Path) else set(_key_pairs(source))
        clash |= not seen.isdisjoint(keys)
        owned.append((source, keys - seen))
        seen |= keys
    if not clash:  # the common case: one dataset scan
        parts = [ds.dataset([str(p) for p in files], format="parquet", schema=schema)
                 .to_table()] if files else []
        return pa.concat_tables([*parts, *(_align(t, schema) for t in unmerged)])
    parts = []
    for source, keys in owned:
        part = (ds.dataset(str(source), format="parquet", schema=schema).to_table()
                if isinstance(source, Path) else _align(source, schema))
        parts.append(part.filter(pa.array([pair in keys for pair in _key_pairs(part)],
                                          pa.bool_())))
    return pa.concat_tables(parts)


def _key_pairs(table: pa.Table) -> list[tuple[str, int]]:
    """The (cell_id, attempt) of each row of ``table``."""
    return list(zip(table.column("cell_id").to_pylist(), table.column("attempt").to_pylist(),
                    strict=True))


def _align(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, in order (missing ones null)."""
    cols = [table.column(f.name).cast(f.type) if f.name in table.column_names
            else pa.nulls(len(table), f.type) for f in schema]
    return pa.Table.from_arrays(cols, schema=schema)


def _rows_table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    """Journal rows as a table of ``schema``, timestamps parsed; keys the schema does not
    declare (written by another version) become extra columns, not lost."""
    stamps = [f.name for f in schema if pa.types.is_timestamp(f.type)]
    for row in rows:
        for name in stamps:
            if isinstance(row.get(name), str):
                row[name] = datetime.fromisoformat(row[name])
    table = pa.Table.from_pylist([{n: r.get(n) for n in schema.names} for r in rows],
                                 schema=schema)
    for extra in sorted({k for r in rows for k in r} - set(schema.names)):
        table = table.append_column(extra, pa.array([r.get(extra) for r in rows]))
    return table


def _with_old_columns(schema: pa.Schema, files: list[Path],
                      tables: list[pa.Table] = ()) -> pa.Schema:
    """``schema`` plus the columns that files (or journal tables) written by another
    version hold and this version no longer declares (a plug-in's metric since renamed or
    removed), so reading or compacting an old folder loses none of its data."""
    known, extra = set(schema.names), []
    for source in [*(pq.read_schema(p) for p in files), *(t.schema for t in tables)]:
        for f in source:
            if f.name not in known:
                known.add(f.name)
                extra.append(f)
    return pa.schema([*schema, *extra], metadata=schema.metadata) if extra else schema


class Store:
    """Reads and writes one output folder. ``on_damage``: what to do with the one-line
    message about a file no reader can read, once it is set aside; None (readers): raise
    :class:`~harness.errors.DamagedFile` (exit code 2); a writer that can go on without the
    file (a resumed run reruns its cells) passes a function that prints it."""

    def __init__(self, out: str | Path, *, on_damage: Callable[[str], None] | None = None):
        self.folder = OutputFolder(out)
        self.out = self.folder.root
        self.cells_dir = self.folder.cells_dir
        self.history_dir = self.folder.history_dir
        self.on_damage = on_damage
        self._segment: journal.Segment | None = None
        self._shard: Shard | None = None
        self._run, self._segments_opened = uuid.uuid4().hex[:12], 0

    def open_journal(self, run_id: str, shard: Shard | None = None) -> None:
        """Name the journal segments this store writes after run ``run_id`` (and ``shard``,
        whose driver merges only its own)."""
        self._shard, self._run = shard, run_id

    def create(self) -> None:
        self.folder.create()

    @contextlib.contextmanager
    def lock(self, shard: Shard | None = None) -> Iterator[None]:
        """Exclusive use of the folder by one driver; a second one fails with exit code 2.

        With ``shard`` (one Slurm array task) the folder is shared with the drivers of the
        other shards and only that shard is exclusive."""
        self.out.mkdir(parents=True, exist_ok=True)
        with contextlib.ExitStack() as stack:
            if shard is None:
                stack.enter_context(self._flock(self.folder.lock_file(), fcntl.LOCK_EX))
            else:
                stack.enter_context(self._flock(self.folder.lock_file(), fcntl.LOCK_SH))
                stack.enter_context(self._flock(self.folder.lock_file(shard), fcntl.LOCK_EX))
            yield

    def lock_holder(self, shard: Shard | None = None) -> str | None:
        """Who holds the folder's lock (``"pid N on HOST"``, as the driver wrote it), or
        None when no live driver does: a driver killed with ``kill -9`` releases its lock
        with its process. ``shard``: the lock of that shard instead."""
        try:
            fd = os.open(self.folder.lock_file(shard), os.O_RDONLY)
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
    def _flock(self, path: Path, mode: int) -> Iterator[None]:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
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
        """Persist one cell attempt (its cells row and history rows): durable on return."""
        if self._segment is None:
            self._segments_opened += 1
            self._segment = journal.Segment(
                self.folder.segment(self._shard, self._run, self._segments_opened))
        self._segment.append(journal.encode(row, history))
        if (self._segment.records >= FLUSH_RECORDS
                or time.monotonic() - self._segment.opened >= FLUSH_S):
            self.merge_journal()

    def merge_journal(self) -> None:
        """Turn this writer's journal segments (its owner's: a killed run's too) into one
        Parquet part file per folder, then delete them; safe to interrupt at any point."""
        self.close()
        segs = self.folder.segments(self._shard, any_owner=False)
        if not segs:
            return
        cells, history = self._journal_tables(segs)
        token = uuid.uuid4().hex[:12]
        if len(history):
            write_atomic(history.sort_by(KEY_ORDER),
                         self.folder.new_part(HISTORY, self._shard, token))
        write_atomic(cells.sort_by(KEY_ORDER), self.folder.new_part(CELLS, self._shard, token))
        for p in segs:
            p.unlink(missing_ok=True)  # a damaged one was set aside

    def compact(self, shard: Shard | None = None) -> None:
        """Merge the journal into Parquet and then the part files into one per folder:
        all of them, or with ``shard`` only that shard's (other shards write at the same
        time). Safe to interrupt at any point."""
        self.merge_journal()
        leftover = self.folder.segments() if shard is None else []  # killed shards'
        cells, history = self._journal_tables(leftover)
        token = uuid.uuid4().hex[:12]
        for kind, schema, unmerged in ((CELLS, cells_schema(), cells),
                                       (HISTORY, HISTORY_SCHEMA, history)):
            files = self._parts(kind, shard, any_owner=shard is None)
            unmerged = [unmerged] if len(unmerged) else []
            if not unmerged and len(files) <= 1:
                continue  # already one file (journal rows are always written out)
            table, read = self._scan(kind, files, lambda fs, s=schema, u=unmerged: _read(fs, s, u))
            write_atomic(table.sort_by(KEY_ORDER), self.folder.new_part(kind, shard, token))
            for p in read:  # only what was merged: a damaged file stays until set aside
                p.unlink()
        for p in leftover:
            p.unlink(missing_ok=True)

    # -- damaged files (harness.damage) ------------------------------------------------
    def _parts(self, kind: str, shard: Shard | None = None, *, any_owner: bool = True
               ) -> list[Path]:
        """The part files of a table whose footer reads; the others are set aside."""
        intact, bad = damage.footers(self.folder.parts(kind, shard, any_owner=any_owner))
        damage.report(damage.set_aside(self.folder, kind, bad), self.on_damage)
        return intact

    def _scan(self, kind: str, files: list[Path], read: Callable[[list[Path]], T]
              ) -> tuple[T, list[Path]]:
        """``read(files)``, and the files it read: when it fails on a file whose footer
        is intact but whose data is broken, that file is found, set aside, and the rest
        read again."""
        try:
            return read(files), files
        except FileNotFoundError:
            raise  # merged away meanwhile: the caller reads again (_reading)
        except (pa.ArrowException, OSError) as err:
            bad = damage.corrupt(files) if damage.is_content_error(err) else []
            if not bad:
                raise
        damage.report(damage.set_aside(self.folder, kind, bad), self.on_damage)
        rest = [p for p in files if p not in {b.path for b in bad}]
        return read(rest), rest

    def _read_segment(self, path: Path) -> tuple[list[dict], list[dict]]:
        """A segment's rows; none when it is damaged (set aside) or was set aside by a
        reader meanwhile."""
        try:
            return journal.read_segment(path)
        except FileNotFoundError:
            if self.on_damage is None:
                raise  # merged away meanwhile: the caller reads again (_reading)
            return [], []  # this writer's own segment: only a reader moves it
        except Exception as err:
            found = damage.check(err, path)
        damage.report(damage.set_aside(self.folder, JOURNAL, [found]), self.on_damage)
        return [], []

    def close(self) -> None:
        """Close the open journal segment (its records are durable already)."""
        if self._segment is not None:
            self._segment.close()
            self._segment = None

    def _journal_tables(self, segs: list[Path], schema: pa.Schema | None = None
                        ) -> tuple[pa.Table, pa.Table]:
        """The cells (of ``schema``, default the full one) and history rows of journal
        files, as tables."""
        rows: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        for p in segs:
            r, h = self._read_segment(p)
            rows += r
            history += h
        return (_rows_table(rows, schema or cells_schema()),
                pa.Table.from_pylist(history, schema=HISTORY_SCHEMA))

    # -- reading -----------------------------------------------------------------------
    def cells(self, *, all_attempts: bool = False, core_only: bool = False) -> pd.DataFrame:
        """The cells table; by default only the latest attempt of each cell. ``core_only``:
        only the columns every row has (no parameters or metrics), read without loading
        the plug-ins (``harness status``)."""
        schema = core_cells_schema() if core_only else None
        df = _reading(lambda: self._read_all(0, schema)).to_pandas()
        if not all_attempts and len(df):
            df = df.sort_values(["cell_id", "attempt"]).groupby("cell_id").tail(1)
        return df.sort_values(["grid", "experiment", "problem", "strategy", "cell_id"],
                              kind="stable").reset_index(drop=True)

    def history(self, *, all_attempts: bool = False) -> pd.DataFrame:
        """The history table; by default only rows of each cell's latest attempt."""
        df = _reading(lambda: self._read_all(1)).to_pandas()
        if not all_attempts and len(df):
            latest = df.groupby("cell_id")["attempt"].transform("max")
            df = df[df["attempt"] == latest]
        return df.reset_index(drop=True)

    def latest_status(self) -> dict[str, tuple[str, int]]:
        """cell_id → (status, attempt) of its latest attempt, read from the status columns
        only (cheap even for large folders)."""
        def read() -> list[pa.Table]:
            # the journal before the Parquet files: see _read_all
            rows = [r for p in self.folder.segments() for r in self._read_segment(p)[0]]
            files = self._parts(CELLS)
            parts = [self._scan(CELLS, files, lambda fs: ds.dataset(
                [str(p) for p in fs], format="parquet").to_table(
                columns=["cell_id", "attempt", "status"]))[0]] if files else []
            return [*parts, pa.Table.from_pylist(
                [{k: r[k] for k in ("cell_id", "attempt", "status")} for r in rows])]

        out: dict[str, tuple[str, int]] = {}
        for table in _reading(read):
            if not len(table):
                continue
            for cid, att, st in zip(*(table.column(c).to_pylist()
                                      for c in ("cell_id", "attempt", "status")), strict=True):
                if cid not in out or att > out[cid][1]:
                    out[cid] = (st, att)
        return out

    def history_attempts(self) -> dict[str, int]:
        """cell_id → the highest attempt number its history rows hold (the journal's
        too). A new attempt takes a number past this as well as past its cells rows
        (``latest_status``), so history left by a set-aside cells part is never mistaken
        for the new attempt's."""
        keys = pa.schema([("cell_id", pa.string()), ("attempt", pa.int64())])

        def read() -> list[pa.Table]:
            journal_rows = [h for p in self.folder.segments() for h in self._read_segment(p)[1]]
            found = [pa.Table.from_pylist(journal_rows, schema=HISTORY_SCHEMA).select(keys.names)]
            files = self._parts(HISTORY)
            if files:
                found.append(self._scan(HISTORY, files, lambda fs: ds.dataset(
                    [str(p) for p in fs], format="parquet").to_table(columns=keys.names))[0])
            return found

        table = pa.concat_tables([t.cast(keys) for t in _reading(read)])
        top = table.group_by("cell_id").aggregate([("attempt", "max")])
        return dict(zip(top.column("cell_id").to_pylist(),
                        top.column("attempt_max").to_pylist(), strict=True))

    def _read_all(self, which: int, schema: pa.Schema | None = None) -> pa.Table:
        """The cells (``which`` 0) or history (1) table: the journal, then the Parquet
        files. In that order, a merge running meanwhile (part file written, then the
        journal deleted) leaves each attempt seen at least once (twice is deduplicated);
        the other order could miss the attempts it moved."""
        segs = self.folder.segments()
        kind, schema = ((CELLS, schema or cells_schema()) if which == 0 else
                        (HISTORY, HISTORY_SCHEMA))
        table = self._journal_tables(segs, schema)[which] if segs else None
        unmerged = [table] if table is not None and len(table) else []
        return self._scan(kind, self._parts(kind), lambda fs: _read(fs, schema, unmerged))[0]


def load_cells(out: str | Path, *, all_attempts: bool = False) -> pd.DataFrame:
    """The cells table of output folder ``out`` as a DataFrame (latest attempt per cell
    unless ``all_attempts``)."""
    return Store(out).cells(all_attempts=all_attempts)


def load_history(out: str | Path, *, all_attempts: bool = False) -> pd.DataFrame:
    """The history table of ``out`` (rows of each cell's latest attempt unless
    ``all_attempts``)."""
    return Store(out).history(all_attempts=all_attempts)
