"""The results store: atomic files, one readable table, resume bookkeeping, schema docs."""

import errno
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from harness import damage
from harness.errors import DamagedFile, DataError
from harness.grid import parse_grid
from harness.result import STATUSES, CellResult
from harness.rows import cell_row, history_rows
from harness.schema import CORE_COLUMNS, HISTORY_COLUMNS, cells_schema, plugin_columns
from harness.shard import Shard
from harness.store import Store, load_cells, load_history

GRID = """
name: s
seeds: [0, 1, 2]
experiments:
  - problem: probe
    strategies: [probe]
"""


def fake_attempt(store, cell, attempt, status="ok", value=1.0):
    """A real row for ``cell`` built the way the driver builds it."""
    now = datetime.now(UTC)
    result = CellResult(cell_id=cell.cell_id, status=status, started_at=now, finished_at=now,
                        wall_s=0.1, metrics={"probe_value": value, "probe_steps": 3},
                        history=[(i, None, 0.01 * i, "train", "norm", float(i)) for i in range(3)])
    store.write_attempt(cell_row(cell, result, attempt=attempt, run_id="r", provenance={}),
                        history_rows(cell, result, attempt=attempt))


@pytest.fixture
def filled(tmp_path):
    cells = parse_grid(GRID).cells
    store = Store(tmp_path / "out")
    store.create()
    fake_attempt(store, cells[0], 1, status="error", value=float("nan"))
    fake_attempt(store, cells[0], 2, value=2.0)
    fake_attempt(store, cells[1], 1)
    fake_attempt(store, cells[2], 1)
    return store, cells


def test_folder_reads_as_one_table_with_pandas_pyarrow_and_duckdb(filled):
    store, _ = filled
    assert len(load_cells(store.out, all_attempts=True)) == 4  # from the journal
    assert not list(store.cells_dir.glob("*.parquet"))
    for step in (store.merge_journal, store.compact):
        step()
        assert len(list(store.cells_dir.glob("*.parquet"))) == 1
        assert not list((store.out / "journal").iterdir())
        df = pd.read_parquet(store.cells_dir)
        assert len(df) == 4
        assert ds.dataset(store.cells_dir, format="parquet").count_rows() == 4
        n = duckdb.sql(f"SELECT count(*) FROM read_parquet('{store.cells_dir}/*.parquet')")
        assert n.fetchall()[0][0] == 4
        h = duckdb.sql(f"SELECT count(*) FROM read_parquet('{store.history_dir}/*.parquet')")
        assert h.fetchall()[0][0] == 12


def test_latest_attempt_view(filled):
    store, cells = filled
    for merged in (False, True):
        if merged:
            store.compact()
        df = load_cells(store.out)
        assert len(df) == 3 and df["cell_id"].is_unique
        first = df.set_index("cell_id").loc[cells[0].cell_id]
        assert first["attempt"] == 2 and first["status"] == "ok" and first["probe_value"] == 2.0
        assert len(load_cells(store.out, all_attempts=True)) == 4
        hist = load_history(store.out)
        assert len(hist) == 9 and set(hist["attempt"][hist["cell_id"] == cells[0].cell_id]) == {2}
        assert store.latest_status()[cells[0].cell_id] == ("ok", 2)


def test_interrupted_merge_leaves_no_duplicates(filled):
    store, _ = filled
    store.close()
    segments = sorted((store.out / "journal").glob("*.jsonl"))
    saved = {p: p.read_bytes() for p in segments}
    store.merge_journal()  # then pretend the deletion of the journal never happened
    for p, data in saved.items():
        p.write_bytes(data)
    assert len(load_cells(store.out, all_attempts=True)) == 4
    assert len(load_history(store.out, all_attempts=True)) == 12
    assert len(Store(store.out).latest_status()) == 3
    Store(store.out).compact()
    assert len(pd.read_parquet(store.cells_dir)) == 4
    assert not list((store.out / "journal").glob("*.jsonl"))


def test_a_killed_shards_journal_is_merged_by_the_next_full_compaction(tmp_path):
    cells = parse_grid(GRID).cells
    store = Store(tmp_path / "out")
    store.create()
    store.open_journal("r1", shard=Shard(1, 2))
    for cell in cells:
        fake_attempt(store, cell, 1)
    store.close()  # killed: its journal was never merged
    assert list((store.out / "journal").glob("shard-1-of-2.r1.*.jsonl"))
    Store(store.out).compact()
    assert not list((store.out / "journal").glob("*.jsonl"))
    assert len(pd.read_parquet(store.cells_dir)) == 3
    assert len(pd.read_parquet(store.history_dir)) == 9


def test_a_torn_last_journal_line_is_ignored_and_records_are_small(filled):
    store, _ = filled
    store.close()
    (segment,) = (store.out / "journal").glob("*.jsonl")
    lines = segment.read_bytes().splitlines(keepends=True)
    assert len(lines) == 4 and max(map(len, lines)) < 2048
    segment.write_bytes(b"".join(lines) + lines[-1][: len(lines[-1]) // 2])  # a power cut
    assert len(load_cells(store.out, all_attempts=True)) == 4
    damaged = lines[0][:40] + b"\n" + b"".join(lines[1:])
    segment.write_bytes(damaged)  # not at the end: the file is damaged, set aside
    age(segment)
    with pytest.raises(DamagedFile, match="line 1 is not a journal record") as err:
        load_cells(store.out)
    assert str(segment) in str(err.value) and "\n" not in str(err.value)
    assert not segment.exists()
    (kept,) = (store.out / "damaged").iterdir()
    assert kept.read_bytes() == damaged  # moved, never deleted
    assert len(load_cells(store.out)) == 0  # the rest of the folder reads without it


def age(path: Path, seconds: float = 3600) -> None:
    """Make ``path`` look written ``seconds`` ago (a file changed within the last minute
    may still be being copied, and is never moved)."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_damaged_parquet_part_is_set_aside_and_named_in_one_line(filled):
    store, _ = filled
    store.compact()
    (good,) = store.cells_dir.glob("*.parquet")
    bad = store.cells_dir / "part-all-0123456789ab.parquet"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # a half-copied file
    content = bad.read_bytes()
    # changed a moment ago, it may still be being copied in: named, left in place
    with pytest.raises(DamagedFile, match="may still be being copied: left in place"):
        load_cells(store.out)
    assert bad.read_bytes() == content
    age(bad)
    with pytest.raises(DamagedFile) as err:
        load_cells(store.out)
    message = str(err.value)
    assert message.startswith(f"{bad}: not a readable file (Parquet") and "\n" not in message
    assert "the cells it held count as not run" in message and not bad.exists()
    (kept,) = (store.out / "damaged").iterdir()
    assert kept.read_bytes() == content
    assert len(load_cells(store.out)) == 3  # the intact part still reads
    # a writer goes on: it is told, and the rows of the intact files stay; a second file
    # of the same name is kept beside the first, not over it
    bad.write_bytes(b"not parquet at all")
    age(bad)
    told: list[str] = []
    assert len(Store(store.out, on_damage=told.append).latest_status()) == 3
    assert len(told) == 1 and str(bad) in told[0]
    assert sorted(p.read_bytes() for p in (store.out / "damaged").iterdir()) == sorted(
        [content, b"not parquet at all"])


def test_broken_pages_behind_an_intact_footer_and_many_damaged_files_at_once(filled):
    store, _ = filled
    store.compact()
    (good,) = store.cells_dir.glob("*.parquet")
    data = bytearray(good.read_bytes())
    data[4:400] = b"\xab" * 396  # the pages, not the footer
    broken = store.cells_dir / "part-all-brokenpages0.parquet"
    broken.write_bytes(bytes(data))
    garbage = store.history_dir / "part-all-garbage00000.parquet"
    garbage.write_bytes(b"garbage")
    cut = store.history_dir / "part-all-garbage00001.parquet"
    cut.write_bytes(b"PAR1")
    for path in (broken, garbage, cut):
        age(path)
    with pytest.raises(DamagedFile) as err:
        load_cells(store.out)
    assert str(err.value).startswith(f"{broken}: not a readable file") and not broken.exists()
    with pytest.raises(DamagedFile) as err:  # both history parts in one line
        load_history(store.out)
    message = str(err.value)
    assert message.startswith(f"{garbage}, {cut}: 2 unreadable files") and "\n" not in message
    assert "keep their results, but their per-step history is missing" in message
    assert len(load_cells(store.out)) == 3 and len(load_history(store.out)) == 9
    assert len(list((store.out / "damaged").iterdir())) == 3


def test_a_file_the_system_will_not_read_is_not_damage(tmp_path):
    """Only a file's content makes it damaged: the system refusing to read it
    (permissions, I/O, open files; errors with an errno) moves nothing."""
    path = tmp_path / "part-all-x.parquet"
    path.write_bytes(b"garbage")
    with pytest.raises(Exception) as real:  # what pyarrow says of a file that is no Parquet
        pq.read_schema(path)
    assert damage.check(real.value, path).reason.startswith("Parquet")
    thrift = OSError("Couldn't deserialize thrift: Variable-length int over 10 bytes.")
    assert damage.check(thrift, path).reason == "Couldn't deserialize thrift: Variable-length" \
        " int over 10 bytes"
    for err in (PermissionError(errno.EACCES, "Permission denied"),
                OSError(errno.EIO, "Input/output error"),
                OSError(errno.EMFILE, "Too many open files")):
        with pytest.raises(DataError, match=f"cannot be read \\({err.strerror}\\)"):
            damage.check(err, path)


def test_temporary_files_are_invisible_to_readers(filled):
    store, _ = filled
    store.compact()
    (store.cells_dir / ".half-written.parquet.1234.tmp").write_bytes(b"PAR1 garbage")
    assert len(pd.read_parquet(store.cells_dir)) == 4
    assert len(load_cells(store.out)) == 3


def test_schema_is_typed_and_stable(filled):
    store, _ = filled
    store.compact()
    table = ds.dataset(store.cells_dir, format="parquet").to_table()
    assert table.schema.equals(cells_schema(), check_metadata=False)
    assert str(table.schema.field("seed").type) == "int64"
    assert str(table.schema.field("started_at").type) == "timestamp[us, tz=UTC]"


def test_second_driver_on_the_same_folder_is_refused(tmp_path):
    from harness.errors import InputError

    store = Store(tmp_path)
    with store.lock(), pytest.raises(InputError, match="in use by pid"), Store(tmp_path).lock():
        pass


def test_docs_results_md_is_generated_from_the_schema():
    from harness.results_doc import render

    assert Path("docs/results.md").read_text() == render(), (
        "docs/results.md is stale: run `make docs` (harness schema --write docs/results.md)")


def test_docs_describe_every_column_and_status():
    text = Path("docs/results.md").read_text()
    for col in [*CORE_COLUMNS, *HISTORY_COLUMNS, *plugin_columns()]:
        assert f"`{col.name}`" in text, f"docs/results.md does not document {col.name}"
    for status in STATUSES:
        assert f"| `{status}` |" in text, f"docs/results.md does not explain status {status}"


def test_a_column_this_version_no_longer_declares_survives_reading_and_compaction(filled):
    """A folder written by an older version whose plug-in declared a metric since removed
    keeps that column when this version reads it and when it compacts it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    store, _ = filled
    store.merge_journal()
    old = next(iter(sorted(store.cells_dir.glob("*.parquet"))))
    table = pq.read_table(old)
    table = table.append_column("retired_metric", pa.array([0.25] * len(table)))
    pq.write_table(table, old)
    for _ in ("before", "after compaction"):
        df = load_cells(store.out, all_attempts=True)
        assert "retired_metric" in df and df["retired_metric"].notna().sum() == len(table)
        assert (df["retired_metric"].dropna() == 0.25).all() and len(df) == 4
        store.compact()
