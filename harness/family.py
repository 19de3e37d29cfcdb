"""A family's declaration: what the report needs to know of it, by name.

Problems and strategies carry a ``family`` name; a family may also declare, in its
package's ``__init__``, the heading of its report section, the section function that
refines the generic one, and the package whose ``claims/`` folder holds its published
claims (package data, found in an installed package as in a checkout)::

    from harness.family import declare_family
    declare_family("flows", title="Normalizing flows: two training strategies",
                   section=f"{__name__}.report:section", claims=__name__)

A family that declares nothing still gets the generic section (see
``harness.report.generic``), headed by its name.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import registry


@dataclass(frozen=True)
class Family:
    """A declared family. ``section`` is ``"module:function"``; the function takes the
    report context and this declaration and returns report blocks. ``claims`` names the
    package whose ``claims/*.yaml`` are the family's published claims. ``module`` is the
    module that declared it."""

    name: str
    title: str
    section: str | None = None
    claims: str | None = None
    module: str = ""

    def section_function(self) -> Callable[..., list[Any]] | None:
        """The family's own section (imported now), or None for the generic one."""
        if not self.section:
            return None
        module, _, function = self.section.partition(":")
        return getattr(importlib.import_module(module), function or "section")


def declare_family(name: str, title: str | None = None, *, section: str | None = None,
                   claims: str | None = None) -> Family:
    """Declare family ``name`` (call it from the family package's ``__init__``); a second
    declaration of the same name from another module is refused."""
    module = sys._getframe(1).f_globals.get("__name__", "")
    family = Family(name=name, title=title or f"Family {name}", section=section,
                    claims=claims, module=module)
    registry.register("family", family)
    return family


def family_of(name: str) -> Family:
    """The declaration of family ``name``, or a plain one (generic section, no published
    claims) when the family declares nothing."""
    return registry.families().get(name) or Family(name=name, title=f"Family {name}")
