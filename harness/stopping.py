"""Stopping a command from outside, from its first line to its last.

SIGTERM and SIGUSR1 (Slurm preemption, the time-limit warning, ``scancel``) raise
:class:`~harness.errors.Preempted`; SIGINT (Ctrl-C) raises ``KeyboardInterrupt``. The CLI
installs the handlers before anything else (:func:`install`) and keeps them until the
process ends (:func:`finish`), so the signal ends a command the documented way whenever it
comes: during start-up, while cells run, during the final merge or at the exit.

A signal is raised only inside :func:`interruptible`: the CLI's command as a whole, and
within the driver, which is :func:`deferred` as a whole, the places where stopping is safe
(an executor waiting for its cells, the merge of result files, which is safe to interrupt
anywhere) and at each :func:`checkpoint`. Elsewhere it is only noted, and raised when the
driver reaches such a place, or reported by :func:`finish`. So a cell handed to a
worker is always noted in flight before the stop, a finished cell is always written, and
a journal line is never cut. After the first signal, later ones are noted and ignored: the
recording of the first must not be interrupted (Slurm signals every process of a job, and
the job script passes the signal on as well).

Outside the CLI (``harness.run_grid`` called from Python) nothing is installed and these
functions change nothing.

:func:`pause_point` holds the process at a named moment when ``HARNESS_PAUSE_AT`` asks for
it, so that a test can send a signal at exactly that moment instead of sleeping and hoping.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import Preempted

STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)
PAUSE_ENV = "HARNESS_PAUSE_AT"  # "<point>=<file>": hold at <point> while <file> exists
PAUSE_POINTS = ("startup", "merge", "exit")


class _State:
    """What this process knows of stop signals (one per process, as signals are)."""

    def __init__(self) -> None:
        self.installed = False
        self.before: dict[signal.Signals, Any] = {}  # the handlers install() replaced
        self.first: signal.Signals | None = None  # the first stop signal received
        self.raised = False  # the stop was raised already (later signals are ignored)
        self.may_raise = False  # True inside interruptible(), False again inside deferred()


_state = _State()


def _exception(sig: signal.Signals) -> BaseException:
    return KeyboardInterrupt() if sig == signal.SIGINT else Preempted(sig.name)


def _raise_pending() -> None:
    if _state.first is not None and not _state.raised:
        _state.raised = True
        raise _exception(_state.first)


def _on_signal(signum: int, frame: object) -> None:
    if _state.first is None:
        _state.first = signal.Signals(signum)
    if _state.may_raise:
        _raise_pending()


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def install() -> None:
    """Take SIGTERM, SIGUSR1 and SIGINT for the rest of the process (the CLI's first
    step). A signal is only noted until the caller opens :func:`interruptible` (the CLI
    does around its command), so its own last lines cannot be cut by one."""
    if not _state.installed:
        _state.before = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    _state.installed, _state.first, _state.raised, _state.may_raise = True, None, False, False
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_signal)


def uninstall() -> None:
    """Give the signals back to the handlers :func:`install` found (for a program that
    calls the CLI's ``main`` and goes on)."""
    if not _state.installed:
        return
    for sig, handler in _state.before.items():
        signal.signal(sig, handler)
    _state.installed, _state.may_raise = False, False


def reclaim() -> None:
    """Put the handlers back after a library took the signals over (``ray.init`` installs
    SIGTERM handlers of its own, one in Python and one in its C++ core that Python's
    ``signal.getsignal`` does not see: so every handler is set again)."""
    if not (_state.installed and _main_thread()):
        return
    for sig in STOP_SIGNALS:
        signal.signal(sig, _on_signal)


def received() -> signal.Signals | None:
    """The first stop signal this process received, if any."""
    return _state.first


@contextlib.contextmanager
def _raising(allowed: bool) -> Iterator[None]:
    if not (_state.installed and _main_thread()):
        yield
        return
    before = _state.may_raise
    _state.may_raise = allowed
    try:
        if allowed:
            _raise_pending()
        yield
    finally:
        _state.may_raise = before
    if before and not allowed:
        _raise_pending()  # back where a stop raises at once: the one noted meanwhile


def deferred() -> contextlib.AbstractContextManager[None]:
    """A region where a stop signal is noted, and raised only inside
    :func:`interruptible`, at a :func:`checkpoint`, or when the region ends."""
    return _raising(False)


def interruptible() -> contextlib.AbstractContextManager[None]:
    """A region where stopping is safe (waiting for cells, merging result files): a stop
    noted before raises on entry, one that comes meanwhile raises at once."""
    return _raising(True)


def checkpoint() -> None:
    """Raise the stop noted so far, if any: a safe moment inside :func:`deferred`."""
    if _state.installed and _main_thread():
        _raise_pending()


def finish() -> signal.Signals | None:
    """Ignore stop signals from here to the end of the process and return the first one
    received, if any. Called last: a signal that comes after it cannot interrupt Python's
    shutdown, and one that came before still decides the exit code."""
    if not (_state.installed and _main_thread()):
        return None
    _state.may_raise = False
    _state.raised = True  # the caller decides from the return value; nothing raises now
    for sig in STOP_SIGNALS:
        # signal.signal runs the Python handler of a signal that is already pending
        # before it swaps the handler, so none is lost in between
        signal.signal(sig, signal.SIG_IGN)
    return _state.first


def pause_point(name: str) -> None:
    """Hold here when ``HARNESS_PAUSE_AT`` is ``name=FILE``: create FILE (with this
    process's id), then wait, interruptibly, until FILE is removed. Lets a test send a
    signal at a known moment of a run (``PAUSE_POINTS``)."""
    if name not in PAUSE_POINTS:
        raise ValueError(f"unknown pause point {name!r}; known: {', '.join(PAUSE_POINTS)}")
    point, _, path = os.environ.get(PAUSE_ENV, "").partition("=")
    if point != name or not path:
        return
    marker = Path(path)
    marker.write_text(str(os.getpid()))
    with interruptible():
        while marker.exists():
            time.sleep(0.02)
