"""A report as a list of blocks, rendered to Markdown, self-contained HTML and LaTeX tables.

Sections build blocks (headings, paragraphs, tables, figures, verdicts); the renderers
know nothing about the experiments, so every family's section looks the same everywhere.
"""

from __future__ import annotations

import base64
import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str  # Markdown-light: `code` and **bold** are rendered in HTML too


@dataclass
class Table:
    """A table; ``name`` also writes ``tables/<name>.tex``."""

    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""
    name: str | None = None


@dataclass
class Link:
    """A table cell that links to ``href`` (an anchor such as ``#slug`` or a file)."""

    text: str
    href: str


# One palette for badges, verdict blocks and figures (matplotlib takes these colours too);
# each is dark enough to carry white bold text.
TONES = {"green": "#2e7d32", "red": "#c62828", "orange": "#e65100", "amber": "#b78103",
         "purple": "#6a1b9a", "grey": "#757575"}


@dataclass
class Badge:
    """A table cell shown as a label: ``text`` in white bold on the colour of ``tone`` (a
    key of :data:`TONES`) in HTML, the text alone in Markdown and LaTeX."""

    text: str
    tone: str


def slug(text: str) -> str:
    """The anchor of a heading, as GitHub and this HTML renderer make it: lower case,
    punctuation dropped, spaces to hyphens."""
    kept = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return kept.replace(" ", "-")


@dataclass
class Figure:
    path: Path  # a PNG inside the report folder
    caption: str = ""


OUTCOME_TONES = {"reproduced": "green", "not reproduced": "red", "partly reproduced": "orange",
                 "inconclusive": "amber", "no data": "grey", "refused": "purple"}


@dataclass
class Verdict:
    """The outcome of checking one published claim against the measured data."""

    claim: str
    source: str
    criterion: str
    measured: str
    outcome: str  # one of harness.report.claims.OUTCOMES
    detail: str = ""
    estimate: str = ""  # "value [low, high], n seeds" (see harness.stats.Estimate.text)
    seeds: int = 0
    claim_id: str = ""
    paper: str = ""
    label: str = ""  # the claim in a few words, with its configuration and scope
    scope: str = ""  # what the label adds to the claim: configuration and scope (or "")
    section: str = ""  # heading of the section the verdict is in (the scoreboard links it)
    cpu_hours: float = 0.0  # cost of the cells of the scope the claim was judged on
    gpu_hours: float = 0.0
    target: str = ""  # the criterion's side and threshold, e.g. "≤ 1.15"
    quantity: str = ""  # what the estimate is, e.g. "ratio (geometric mean)"
    accounting: str = ""  # failed cells counted as worst, cells excluded, and why
    # The estimate's numbers, for a figure: the value and its interval on the printed scale
    # (None without an estimate or an interval), harness.stats.Estimate.kind, and the
    # criterion ``value op threshold`` it was judged against (None when it has no number).
    value: float | None = None
    low: float | None = None
    high: float | None = None
    kind: str = ""
    threshold: float | None = None
    op: str = ""
    stopped: str = ""  # why its seeds stopped (conclusive, max seeds, budget); "": fixed
    judged: Any = None  # harness.report.claims.Judged: scope, seeds and level, not shown

    @property
    def tone(self) -> str:
        """The colour of the outcome, a key of :data:`TONES`."""
        return OUTCOME_TONES.get(self.outcome, "grey")

    @property
    def estimate_text(self) -> str:
        """What the estimate is, its value, interval and seeds, and what it left out."""
        what = f"{self.quantity} " if self.quantity else ""
        return what + self.estimate + (f"; {self.accounting}" if self.accounting else "")


@dataclass
class Document:
    title: str
    blocks: list[Any] = field(default_factory=list)

    def add(self, *blocks: Any) -> None:
        self.blocks.extend(blocks)


def fmt(value: Any, digits: int = 4) -> str:
    """Numbers with ``digits`` significant digits; None/NaN as an en dash."""
    if isinstance(value, Link | Badge):
        return value.text
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        return f"{value:.{digits}g}"
    return str(value)


# -- Markdown ----------------------------------------------------------------------------
def to_markdown(doc: Document, root: Path) -> str:
    out = [f"# {doc.title}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out += ["#" * b.level + " " + b.text, ""]
        elif isinstance(b, Paragraph):
            out += [b.text, ""]
        elif isinstance(b, Table):
            out += _md_table(b.columns, [[_md_cell(c) for c in r] for r in b.rows])
            if b.caption:
                out += [f"*{b.caption}*", ""]
        elif isinstance(b, Figure):
            out += [f"![{b.caption}]({b.path.relative_to(root).as_posix()})", "",
                    f"*{b.caption}*", ""]
        elif isinstance(b, Verdict):
            out += [f"- **{b.outcome.upper()}** — {b.claim} ({b.source}). Estimate: "
                    f"{b.estimate_text}. Criterion: {b.criterion}. Measured: {b.measured}."
                    + (f" {b.detail}" if b.detail else ""), ""]
    return "\n".join(out).rstrip() + "\n"


def _md_cell(value: Any) -> str:
    return f"[{value.text}]({value.href})" if isinstance(value, Link) else fmt(value)


def _html_cell(value: Any) -> str:
    if isinstance(value, Link):
        return f"<a href='{html.escape(value.href)}'>{html.escape(value.text)}</a>"
    if isinstance(value, Badge):
        return _badge(value.text, value.tone)
    return _inline(fmt(value))  # `code` as in the Markdown table


def _badge(text: str, tone: str) -> str:
    return f"<span class='badge bg-{tone}'>{html.escape(text)}</span>"


def _md_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    def esc(s: str) -> str:
        return s.replace("|", "\\|")

    lines = ["| " + " | ".join(esc(c) for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in rows]
    return [*lines, ""]


# -- HTML --------------------------------------------------------------------------------
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#1b1b1b;line-height:1.45}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #bbb;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.9em;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:right}
th{background:#f2f2f2}td:first-child,th:first-child,.t{text-align:left}
figure{margin:1em 0}img{max-width:100%}figcaption,.caption{color:#555;font-size:.9em}
code{background:#f4f4f4;padding:0 .2em}
.verdict{padding:.5em .8em;margin:.6em 0;border-left:5px solid #999;background:#fafafa}
.badge{color:#fff;font-weight:bold;font-size:.85em;padding:.1em .55em;border-radius:.7em;
white-space:nowrap}
""" + "".join(f".bg-{t}{{background:{c}}}.edge-{t}{{border-color:{c}}}" for t, c in TONES.items())


# A cell that reads as a number: right-aligned, so that its digits line up with the column's
_NUMBER = re.compile(r"[-+−]?(\d[\d,]*(\.\d*)?|\.\d+)(e[-+]?\d+)? ?%?|–|")


def _is_text(value: Any) -> bool:
    """Whether a cell reads as text (its column is left-aligned) rather than a number."""
    return not isinstance(value, int | float) and not _NUMBER.fullmatch(fmt(value).strip())


def _inline(text: str) -> str:
    text = html.escape(text)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", text)


def to_html(doc: Document) -> str:
    """One self-contained HTML page: figures are embedded as data URIs."""
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
           f"<title>{html.escape(doc.title)}</title><style>{_CSS}</style></head><body>",
           f"<h1>{html.escape(doc.title)}</h1>"]
    for b in doc.blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level} id='{slug(b.text)}'>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Paragraph):
            out.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Table):
            text = [" class='t'" if any(_is_text(r[i]) for r in b.rows) else ""
                    for i in range(len(b.columns))]
            head = "".join(f"<th{t}>{html.escape(c)}</th>" for c, t in zip(b.columns, text,
                                                                          strict=True))
            body = "".join("<tr>" + "".join(f"<td{t}>{_html_cell(c)}</td>" for c, t in zip(
                r, text, strict=True)) + "</tr>" for r in b.rows)
            cap = f"<div class='caption'>{_inline(b.caption)}</div>" if b.caption else ""
            out.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
                       f"{cap}")
        elif isinstance(b, Figure):
            data = base64.b64encode(b.path.read_bytes()).decode()
            out.append(f"<figure><img alt='{html.escape(b.caption)}' "
                       f"src='data:image/png;base64,{data}'><figcaption>"
                       f"{_inline(b.caption)}</figcaption></figure>")
        elif isinstance(b, Verdict):
            out.append(f"<div class='verdict edge-{b.tone}'>{_badge(b.outcome.upper(), b.tone)}"
                       f" — {_inline(b.claim)} <i>({_inline(b.source)})</i><br>"
                       f"Estimate: <b>{_inline(b.estimate_text)}</b>. "
                       f"Criterion: {_inline(b.criterion)}. Measured: {_inline(b.measured)}."
                       + (f"<br>{_inline(b.detail)}" if b.detail else "") + "</div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# -- LaTeX -------------------------------------------------------------------------------
def _tex_escape(text: str) -> str:
    repl = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
            "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\^{}"}
    return "".join(repl.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """A booktabs ``tabular`` inside a ``table`` float, with the caption."""
    spec = "l" + "r" * (len(table.columns) - 1)
    lines = [r"\begin{table}[ht]", r"\centering", rf"\begin{{tabular}}{{{spec}}}",
             r"\toprule", " & ".join(_tex_escape(c) for c in table.columns) + r" \\",
             r"\midrule"]
    lines += [" & ".join(_tex_escape(fmt(c)) for c in row) + r" \\" for row in table.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if table.caption:
        lines.append(rf"\caption{{{_tex_escape(table.caption)}}}")
    if table.name:
        lines.append(rf"\label{{tab:{table.name}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"
