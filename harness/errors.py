"""Errors the harness reports to the user as bad input (exit code 2), never as a traceback."""

from __future__ import annotations


class InputError(Exception):
    """Bad input: a grid file, a CLI flag, a data file or a parameter value.

    ``str(err)`` is one line that names the file, the place in it, the key and the value,
    and says what is allowed.
    """

    def __init__(self, message: str, *, file: str | None = None, where: str | None = None):
        self.file, self.where, self.message = file, where, message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        parts = [p for p in (self.file, self.where) if p]
        return ": ".join([*parts, self.message])


class ParamError(ValueError):
    """A parameter value is not allowed. ``key`` names the parameter; the message says what
    is allowed. Turned into an :class:`InputError` with the file and experiment by the grid."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"{key}: {message}")


class RegistrationError(InputError):
    """Two plug-ins claim one name (problem, strategy, family or check kind)."""


class DataError(InputError):
    """A data file is missing, unreadable or malformed."""


class DamagedFile(DataError):
    """A file of an output folder that cannot be read (a half-copied folder, a full disk);
    it has been set aside in the folder's ``damaged/``, never deleted."""


class Preempted(BaseException):
    """The driver was told to stop from outside (SIGTERM or SIGUSR1: Slurm preemption, the
    time-limit warning, scancel). A BaseException, like KeyboardInterrupt, so that no
    ``except Exception`` on the way swallows it."""
