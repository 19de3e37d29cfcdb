"""The journal: where a run records each finished cell attempt the moment it arrives.

One append-only file per run and segment (``OutputFolder.segment`` names it):
each attempt is one line of compact JSON (the cells row without its null fields, and the
history as value lists), written with a single ``write`` and ``fdatasync``-ed before the
driver moves on, so a ``kill -9`` or a power cut at any moment loses no finished attempt.
The cost of a record is one append, the same for the first cell as for the millionth.
The store turns segments into Parquet part files (``Store.compact``) and reads unmerged
segments together with the Parquet files; a torn last line (a power cut inside a write)
is ignored. A shard's driver merges only its own segments.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

HISTORY_FIELDS = ("step", "epoch", "wall_s", "split", "metric", "value")


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot journal a {type(value).__name__}")


def encode(row: dict[str, Any], history: list[dict[str, Any]]) -> bytes:
    """One journal line for an attempt (``history``: rows of ``rows.history_rows``)."""
    record = {"c": {k: v for k, v in row.items() if v is not None},
              "h": [[h[f] for f in HISTORY_FIELDS] for h in history]}
    return (json.dumps(record, separators=(",", ":"), default=_encode) + "\n").encode()


class Segment:
    """An open journal file of one run; ``append`` is durable when it returns."""

    def __init__(self, path: Path):
        self.path = path
        self.records = 0
        self.opened = time.monotonic()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        dir_fd = os.open(path.parent, os.O_RDONLY)  # the new name survives a power cut
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def append(self, line: bytes) -> None:
        """Write one record and flush it to the disk."""
        written = os.write(self._fd, line)
        while written < len(line):  # a short write (rare: a full disk, a signal)
            written += os.write(self._fd, line[written:])
        os.fdatasync(self._fd)
        self.records += 1

    def close(self) -> None:
        os.close(self._fd)


def read_segment(path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The cells rows and history rows of a journal file (timestamps still ISO text). A
    last line cut short by a power cut is skipped; any other bad line is an error."""
    rows: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    data = path.read_bytes()
    lines = data.split(b"\n")
    for i, line in enumerate(lines):
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:  # no newline after it: the write never completed
                break
            raise ValueError(f"line {i + 1} is not a journal record") from None
        row = record["c"]
        rows.append(row)
        key = {"cell_id": row["cell_id"], "attempt": row["attempt"]}
        history.extend({**key, **dict(zip(HISTORY_FIELDS, h, strict=True))}
                       for h in record["h"])
    return rows, history
