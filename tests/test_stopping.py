"""harness.stopping in this process: where a stop signal is raised and where it waits.
Real signals sent to the test process itself (the handlers are given back afterwards)."""

import os
import signal

import pytest

from harness import stopping
from harness.errors import Preempted


@pytest.fixture
def installed():
    stopping.install()
    yield
    stopping.uninstall()


def test_in_an_interruptible_region_a_signal_raises_at_once(installed):
    with pytest.raises(Preempted, match="SIGTERM"), stopping.interruptible():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between two bytecodes, in this thread
            pass
    assert stopping.received() == signal.SIGTERM


def test_outside_every_region_a_signal_is_noted_for_the_end(installed):
    os.kill(os.getpid(), signal.SIGUSR1)
    for _ in range(1000):
        pass
    assert stopping.received() == signal.SIGUSR1  # noted, not raised
    assert stopping.finish() == signal.SIGUSR1


def test_deferred_notes_the_signal_and_raises_it_only_where_stopping_is_safe(installed):
    steps = []
    with pytest.raises(Preempted, match="SIGUSR1"), stopping.interruptible(), \
            stopping.deferred():
        os.kill(os.getpid(), signal.SIGUSR1)
        steps.append("bookkeeping goes on")  # not interrupted
        os.kill(os.getpid(), signal.SIGTERM)  # a second signal changes nothing
        steps.append("still going")
        with stopping.interruptible():
            steps.append("never reached")  # raised on entry: the stop was noted before
    assert steps == ["bookkeeping goes on", "still going"]
    assert stopping.received() == signal.SIGUSR1


def test_a_stop_noted_in_a_deferred_region_is_raised_when_it_ends(installed):
    with pytest.raises(KeyboardInterrupt), stopping.interruptible():
        with stopping.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            done = True
        assert not done  # not reached: the Ctrl-C is raised as the region ends
    with stopping.deferred():
        stopping.checkpoint()  # the stop was raised once; later checkpoints are quiet


def test_finish_ignores_later_signals_and_reports_the_first(installed):
    with stopping.deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        assert stopping.finish() == signal.SIGTERM
    os.kill(os.getpid(), signal.SIGTERM)  # ignored: the process is ending
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN


def test_without_install_the_regions_change_nothing():
    before = {sig: signal.getsignal(sig) for sig in stopping.STOP_SIGNALS}
    with stopping.deferred(), stopping.interruptible():
        stopping.checkpoint()
    assert stopping.finish() is None
    assert {sig: signal.getsignal(sig) for sig in stopping.STOP_SIGNALS} == before


def test_the_cli_called_from_python_gives_the_signals_back(capsys):
    from harness.cli import main

    before = {sig: signal.getsignal(sig) for sig in stopping.STOP_SIGNALS}
    assert main(["--version"]) == 0 and capsys.readouterr().out.strip()
    assert {sig: signal.getsignal(sig) for sig in stopping.STOP_SIGNALS} == before
