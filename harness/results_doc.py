"""``docs/results.md``, generated: the results contract in words (``results_doc.md.in``)
with every column of :mod:`harness.schema` — the core ones and one per parameter and metric
of each registered plug-in — in tables.

``harness schema`` prints it; ``harness schema --write docs/results.md`` (``make docs``)
updates the file, and a test keeps the checked-in copy current.
"""

from __future__ import annotations

from collections import defaultdict
from importlib import resources

from . import vocabulary
from .schema import CORE_COLUMNS, HISTORY_COLUMNS, Column, arrow_type

TEMPLATE = "results_doc.md.in"


def _table(rows: list[tuple[str, ...]], header: tuple[str, ...] = ("column", "type", "meaning")
           ) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [f"| `{row[0]}` | " + " | ".join(c.replace("|", "/") for c in row[1:]) + " |"
              for row in rows]
    return "\n".join(lines)


def _core(columns: list[Column]) -> list[tuple[str, str, str]]:
    return [(c.name, str(c.type).replace("timestamp[us, tz=UTC]", "timestamp (UTC)"), c.doc)
            for c in columns]


def _plugin_tables() -> tuple[str, str]:
    """(parameters, metrics) tables: one row per column with its type, role and each
    owner's words (owners with the same words on one line)."""
    rows: dict[bool, list[tuple[str, ...]]] = {True: [], False: []}
    for col, term in vocabulary.terms().items():
        words: dict[str, list[str]] = defaultdict(list)
        for owner, doc in term.docs():
            words[doc].append(owner.name if term.kind == vocabulary.METRIC
                              else f"{owner.kind} {owner.name}")
        meaning = "; ".join(f"{o}: {d}" for o, d in sorted(
            (", ".join(sorted(owners)), doc) for doc, owners in words.items()))
        rows[term.kind == vocabulary.METRIC].append(
            (col, str(arrow_type(term.type)), term.role.name if term.role else "", meaning))
    header = ("column", "type", "role", "meaning")
    return _table(rows[False], header), _table(rows[True], header)


def _roles() -> str:
    """The roles a column can be declared with, and what the engine does with each."""
    return _table([(r.name, r.meaning) for r in vocabulary.ROLES], ("role", "meaning"))


def render() -> str:
    """The text of docs/results.md for the registered plug-ins."""
    groups: dict[str, list[Column]] = defaultdict(list)
    for col in CORE_COLUMNS:
        groups[col.group].append(col)
    params, metrics = _plugin_tables()
    cells = [f"### {group}\n\n{_table(_core(cols))}" for group, cols in groups.items()]
    cells += [f"### parameters (one per declared parameter)\n\n{params}",
              f"### metrics (one per declared metric)\n\n{metrics}"]
    template = resources.files("harness").joinpath(TEMPLATE).read_text()
    text = template.replace("{cells_columns}", "\n\n".join(cells))
    text = text.replace("{roles}", _roles())
    return text.replace("{history_columns}", _table(_core(HISTORY_COLUMNS)))
