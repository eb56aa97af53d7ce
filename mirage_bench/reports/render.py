"""One :class:`~mirage_bench.reports.tables.Table`, written as Markdown, LaTeX (booktabs), CSV, JSON, HTML or rich.

Every format shows the same numbers: cells ``Acc / AP`` in percent, best of a column in bold and the
second underlined, random-backbone rows marked with a dagger (†), reconstructions with a double dagger (‡), each with a footnote. CSV and JSON carry the
unrounded values (percent) for machines; the others carry one decimal for people.
"""

from __future__ import annotations

import html
import io
import json
from typing import Any, Callable, Sequence

import numpy as np

from mirage_bench.reports.tables import Table
from mirage_bench.reports.terminal import print_fitted

Style = Callable[[str, str], str]  # (text, mark) -> styled text


def _cells(table: Table, style: Style) -> list[list[str]]:
    marks = table.marks()
    return [
        [" / ".join(style(table.cell_text(r, c, m), marks[r, c, m]) for m in range(len(table.metrics))) for c in range(len(table.columns))]
        for r in range(len(table.rows))
    ]


def _header(table: Table) -> list[str]:
    return [*table.row_header, *table.columns]


def markdown(table: Table) -> str:
    style = lambda text, mark: {"best": f"**{text}**", "second": f"<u>{text}</u>"}.get(mark, text)
    lines = [f"**{table.title}**", "", "| " + " | ".join(_header(table)) + " |",
             "|" + "|".join([":--"] * len(table.row_header) + ["--:"] * len(table.columns)) + "|"]
    for r, cells in enumerate(_cells(table, style)):
        lines.append("| " + " | ".join([*table.row_label(r), *cells]) + " |")
    lines += [""] + [f"{note}  " for note in table.footnotes]
    return "\n".join(lines).rstrip() + "\n"


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                   "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "†": r"$^\dagger$", "‡": r"$^\ddagger$", "±": r"$\pm$",
                   "–": "--"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def latex(table: Table) -> str:
    style = lambda text, mark: {"best": rf"\textbf{{{latex_escape(text)}}}",
                                "second": rf"\underline{{{latex_escape(text)}}}"}.get(mark, latex_escape(text))
    spec = "l" * len(table.row_header) + "c" * len(table.columns)
    lines = [r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(table.title)}}}", rf"\begin{{tabular}}{{{spec}}}",
             r"\toprule", " & ".join(latex_escape(h) for h in _header(table)) + r" \\", r"\midrule"]
    for r, cells in enumerate(_cells(table, style)):
        lines.append(" & ".join([*(latex_escape(x) for x in table.row_label(r)), *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [rf"\par\footnotesize {latex_escape(note)}" for note in table.footnotes]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def records(table: Table) -> list[dict[str, Any]]:
    """One flat record per row: the row keys, then ``<column>/<metric>`` (and ``.../std``) in percent."""
    out = []
    for r, row in enumerate(table.rows):
        rec: dict[str, Any] = dict(zip(table.row_header, row))
        rec.update(table.flags(r))
        for c, col in enumerate(table.columns):
            for m, met in enumerate(table.metrics):
                rec[f"{col}/{met}"] = _number(table.values[r, c, m])
                rec[f"{col}/{met}/std"] = _number(table.std[r, c, m])
        out.append(rec)
    return out


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def csv(table: Table) -> str:
    import pandas as pd

    buffer = io.StringIO()
    pd.DataFrame(records(table)).to_csv(buffer, index=False)
    return buffer.getvalue()


def to_json(table: Table) -> dict[str, Any]:
    return {"name": table.name, "title": table.title, "unit": "percent", "columns": table.columns, "metrics": table.metrics,
            "rows": records(table), "footnotes": table.footnotes}


def json_text(table: Table) -> str:
    return json.dumps(to_json(table), indent=2) + "\n"


def html_table(table: Table) -> str:
    style = lambda text, mark: {"best": f"<b>{html.escape(text)}</b>", "second": f"<u>{html.escape(text)}</u>"}.get(
        mark, html.escape(text))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _header(table))
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(x)}</td>" for x in table.row_label(r)) + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"
        for r, cells in enumerate(_cells(table, style)))
    notes = "".join(f"<p class='note'>{html.escape(n)}</p>" for n in table.footnotes)
    return (f"<table id='table-{html.escape(table.name)}'><caption>{html.escape(table.title)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}")


def rich_table(table: Table, columns: Sequence[str] | None = None, note: str = "") -> Any:
    """The table for a terminal; ``columns``: only these of its columns (all by default), ``note`` added to its
    footnotes (what was left out)."""
    from rich.table import Table as RichTable
    from rich.text import Text

    # Plain Text for names and notes: rich would read ':x:' in 'family:x: ...' as an emoji code.
    style = lambda text, mark: {"best": f"[bold]{text}[/]", "second": f"[underline]{text}[/]"}.get(mark, text)
    shown = [c for c, col in enumerate(table.columns) if columns is None or col in columns]
    notes = [*table.footnotes, note] if note else table.footnotes
    out = RichTable(title=Text(table.title), caption=Text("\n".join(notes)) if notes else None)
    for h in table.row_header:
        out.add_column(Text(h), overflow="fold")  # names wrap rather than lose their † mark
    for c in shown:
        out.add_column(Text(table.columns[c]), justify="right")
    for r, cells in enumerate(_cells(table, style)):
        out.add_row(*map(Text, table.row_label(r)), *(cells[c] for c in shown))
    return out


def print_table(console: Any, table: Table, wide: bool = False, where: str = "the report's CSV and JSON") -> None:
    """Print ``table`` fitted to the terminal (the mean and clean columns kept), or every column with ``wide``."""
    required = [c for c in table.columns if c in ("mean", "none")]
    print_fitted(console, lambda shown, note: rich_table(table, shown, note), table.columns, required, wide, where)


#: File suffix -> text renderer.
TEXT_FORMATS: dict[str, Callable[[Table], str]] = {"md": markdown, "tex": latex, "csv": csv, "json": json_text}
