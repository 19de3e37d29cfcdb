"""Declared parameters of problems and strategies: type, default, allowed values, docs.

A plug-in declares ``parameters = {"n_features": Param(int, 512, "…", low=1)}``. The grid
validates every value against its declaration before anything runs, and ``harness list``
prints the declarations.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from .errors import ParamError
from .vocabulary import Role

REQUIRED = object()  # sentinel: the parameter has no default
_FLOAT_TEXT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
KINDS = {int: "int", float: "float", str: "str", bool: "bool"}


@dataclass(frozen=True)
class Param:
    """One parameter declaration.

    Attributes:
        kind: ``int``, ``float``, ``str`` or ``bool``.
        default: the value when the grid does not give one (``REQUIRED`` for none).
        doc: one line for ``harness list`` and the docs.
        choices: the allowed values, for ``str`` parameters with a fixed vocabulary.
        low, high: inclusive bounds for numbers; ``low_open``/``high_open`` make them strict.
        nullable: ``null`` (None) is allowed.
        identity: part of the cell's identity. False for *where* something is (a data
            directory) rather than *what* is computed, so moving data keeps cell ids.
        role: what the engine does with the parameter's column, e.g.
            ``harness.vocabulary.DATASET`` (None: nothing special).
    """

    kind: type
    default: Any = REQUIRED
    doc: str = ""
    choices: tuple[Any, ...] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    nullable: bool = False
    identity: bool = True
    role: Role | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise TypeError(f"Param kind must be one of {list(KINDS.values())}, not {self.kind}")
        if self.role is not None and not isinstance(self.role, Role):
            raise TypeError(f"Param role must be a harness.vocabulary.Role, not {self.role!r}")

    @property
    def required(self) -> bool:
        return self.default is REQUIRED

    def allowed(self) -> str:
        """What values are allowed, in words (used in error messages and ``harness list``)."""
        if self.choices is not None:
            text = "one of " + ", ".join(str(c) for c in self.choices)
        else:
            text = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}[
                self.kind
            ]
            bounds = []
            if self.low is not None:
                bounds.append(f"{'>' if self.low_open else '≥'} {self.low:g}")
            if self.high is not None:
                bounds.append(f"{'<' if self.high_open else '≤'} {self.high:g}")
            if bounds:
                text += " " + " and ".join(bounds)
        return text + (" or null" if self.nullable else "")

    def coerce(self, key: str, value: Any) -> Any:
        """Return ``value`` as this parameter's type, or raise :class:`ParamError`.

        YAML 1.1 reads ``1e-3`` as a string, so number-like strings are accepted for floats;
        an integral float is accepted for an int only if it is exactly integral."""
        if value is None:
            if self.nullable:
                return None
            raise ParamError(key, f"null is not allowed; allowed: {self.allowed()}")
        out = self._convert(key, value)
        if self.choices is not None and out not in self.choices:
            raise ParamError(key, f"{value!r} is not allowed; allowed: {self.allowed()}")
        if self.kind in (int, float):
            if not math.isfinite(out):
                raise ParamError(key, f"{value!r} is not finite; allowed: {self.allowed()}")
            too_low = self.low is not None and (
                out <= self.low if self.low_open else out < self.low
            )
            too_high = self.high is not None and (
                out >= self.high if self.high_open else out > self.high
            )
            if too_low or too_high:
                raise ParamError(key, f"{value!r} is out of range; allowed: {self.allowed()}")
        return out

    def _convert(self, key: str, value: Any) -> Any:
        wrong = ParamError(key, f"{value!r} has the wrong type; allowed: {self.allowed()}")
        if self.kind is bool:
            if isinstance(value, bool):
                return value
            raise wrong
        if isinstance(value, bool):  # bool is an int subclass; never a number here
            raise wrong
        if self.kind is int:
            if isinstance(value, int):
                return value
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise wrong
        if self.kind is float:
            if isinstance(value, (int, float)):
                return float(value)
            if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
                return float(value)
            raise wrong
        if isinstance(value, str):
            return value
        raise wrong


def validate_params(
    declared: dict[str, Param], given: dict[str, Any], owner: str
) -> dict[str, Any]:
    """Check ``given`` against ``declared`` and fill in defaults.

    Raises :class:`ParamError` for an unknown name (listing the valid ones), a missing
    required parameter, or a value that is not allowed."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        valid = ", ".join(sorted(declared)) or "(none)"
        raise ParamError(unknown[0], f"unknown parameter of {owner}; valid: {valid}")
    out = {}
    for key, decl in declared.items():
        if key in given:
            out[key] = decl.coerce(key, given[key])
        elif decl.required:
            raise ParamError(key, f"{owner} needs this parameter; allowed: {decl.allowed()}")
        else:
            out[key] = decl.default
    return out
