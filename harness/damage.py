"""Files of an output folder that no reader can read — a part half copied, a disk that
filled during a copy, a journal line broken in the middle — and what becomes of them.

Such a file is moved to the folder's ``damaged/`` (never deleted, never overwritten) and
named in one line that says what is lost and what to do; the rest of the folder then reads
without it. Two kinds of failure are *not* damage and move nothing: the operating system
refusing the read (permissions, I/O error, too many open files: the file may be fine), and
a file changed in the last :data:`RECENT_S` seconds, which may still be being copied in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import DamagedFile, DataError
from .folder import CELLS, HISTORY, JOURNAL, OutputFolder

RECENT_S = 60.0  # a file changed this recently may be half copied: named, never moved

# What is lost while a file of each kind is set aside, and what to do about it.
_CONSEQUENCE = {
    CELLS: "the cells it held count as not run (harness run reruns them) until you put an "
           "intact copy back",
    HISTORY: "the cells it held keep their results, but their per-step history is missing "
             "until you put an intact copy back",
    JOURNAL: "the attempts it recorded count as not run (harness run reruns them) until "
               "you put an intact copy back",
}


@dataclass(frozen=True)
class Unreadable:
    """A file a reader could not read, and why (the reader's first sentence)."""

    path: Path
    reason: str


def is_content_error(err: BaseException) -> bool:
    """Whether ``err`` says a file's *content* is wrong, not that the system refused to
    read it (an ``OSError`` with an errno: permission, I/O, open files)."""
    if isinstance(err, OSError) and err.errno is not None:
        return False
    return isinstance(err, (pa.ArrowException, OSError, ValueError, KeyError, TypeError))


def reason_of(err: BaseException) -> str:
    """The first sentence of a reader's error ("Parquet magic bytes not found in
    footer"); the rest of it is advice the one line gives better."""
    text = (str(err).splitlines() or [""])[0] or type(err).__name__
    return text.split(". ")[0].rstrip(".")


def check(err: BaseException, path: Path) -> Unreadable:
    """``err`` as damage of ``path``; an OS refusal is re-raised as a one-line
    ``DataError`` instead (nothing is moved)."""
    if not is_content_error(err):
        raise DataError(f"cannot be read ({getattr(err, 'strerror', None) or err}); fix the "
                        "file's permissions or the disk, then run the command again",
                        file=str(path)) from None
    return Unreadable(path, reason_of(err))


def _sort(paths: list[Path], read: Callable[[Path], object]
          ) -> tuple[list[Path], list[Unreadable]]:
    """``paths`` split into those ``read`` reads and the unreadable ones. A file merged
    away meanwhile raises ``FileNotFoundError`` (the caller reads again)."""
    intact, bad = [], []
    for path in paths:
        try:
            read(path)
        except FileNotFoundError:
            raise
        except Exception as err:  # sorted by check(): damage or refusal
            bad.append(check(err, path))
        else:
            intact.append(path)
    return intact, bad


def footers(paths: list[Path]) -> tuple[list[Path], list[Unreadable]]:
    """Parquet files split into those whose footer reads (what a half-copied file lacks)
    and the unreadable ones."""
    return _sort(paths, pq.read_schema)


def corrupt(paths: list[Path]) -> list[Unreadable]:
    """The files among ``paths`` whose data does not read in full (a footer intact over
    broken pages): called after a scan of them all failed, to find which."""
    return _sort(paths, pq.read_table)[1]


def set_aside(folder: OutputFolder, kind: str, found: list[Unreadable]) -> str:
    """Move each of ``found`` (files of ``kind``: cells, history or journal) to
    ``damaged/`` unless it changed in the last :data:`RECENT_S` seconds, and return the
    one line that says so."""
    moved, kept = [], []
    for item in found:
        try:
            recent = time.time() - item.path.stat().st_mtime < RECENT_S
        except FileNotFoundError:
            continue  # set aside by another reader meanwhile
        if recent:
            kept.append(item)
            continue
        try:
            folder.set_aside(item.path)
            moved.append(item)
        except FileNotFoundError:
            continue
        except OSError as err:
            raise DataError(f"is unreadable ({item.reason}) and could not be moved aside "
                            f"({err.strerror}): move it out of the folder",
                            file=str(item.path)) from None
    done = moved + kept
    if not done:
        return ""
    names = ", ".join(str(i.path) for i in done)
    why = "; ".join(sorted({i.reason for i in done}))
    what = "not a readable file" if len(done) == 1 else f"{len(done)} unreadable files"
    parts = [f"{names}: {what} ({why})"]
    if moved:
        parts.append(f"moved to {folder.damaged_dir}/, so that the rest of the folder "
                     f"reads; {_CONSEQUENCE[kind]}")
    if kept:
        parts.append(f"{'the other' if moved else 'it'} changed less than "
                     f"{RECENT_S:.0f} s ago and may still be being copied: left in place; "
                     f"run the command again when the copy is done")
    return "; ".join(parts)


def report(line: str, on_damage: Callable[[str], None] | None) -> None:
    """Raise the line as :class:`DamagedFile` (readers: exit code 2), or hand it to
    ``on_damage`` (a writer that goes on without the files)."""
    if not line:
        return
    if on_damage is None:
        raise DamagedFile(line)
    on_damage(line)
