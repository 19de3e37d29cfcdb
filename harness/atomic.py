"""Writing a file so that readers see it absent or complete, never half written: write a
hidden temporary file beside it, then rename it over the target (atomic on POSIX).

Temporary names start with a dot, so ``*.parquet`` globs (pyarrow.dataset, DuckDB) and
folder listings skip them, and end in ``.tmp``; concurrent writers never share one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temp_name(path: Path) -> Path:
    """A fresh hidden temporary path beside ``path``."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


@contextmanager
def replacing(path: str | Path, *, durable: bool = False) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on an exception
    it is removed. ``durable``: fsync the file and its folder, so the rename survives a
    power cut (results), not only a crash of this process."""
    path = Path(path)
    tmp = temp_name(path)
    try:
        yield tmp
        if durable:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def write_text(path: str | Path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text)
