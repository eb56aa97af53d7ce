"""One self-contained HTML page: tables inline, figures as base64 PNG ``<img>``, no external CSS or JS."""

from __future__ import annotations

import base64
import html
from typing import Sequence

from mirage_bench.reports.figures import Figure
from mirage_bench.reports.render import html_table
from mirage_bench.reports.tables import Table

_CSS = ("body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;margin:1em 0}caption{font-weight:bold;text-align:left;padding:.3em 0}"
        "th,td{padding:.2em .6em;border-bottom:1px solid #ccc}td{text-align:right}td:first-child{text-align:left}"
        ".note{font-size:.85em;color:#444;margin:.2em 0}figure{display:inline-block;margin:1em}")


def page(title: str, provenance: Sequence[str], tables: Sequence[Table], figures: Sequence[Figure]) -> str:
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    parts += [f"<p class='note'>{html.escape(line)}</p>" for line in provenance]
    parts += ["<h2>Tables</h2>", *(html_table(t) for t in tables), "<h2>Figures</h2>"]
    for figure in figures:
        data = base64.b64encode(figure.png).decode("ascii")
        parts.append(f"<figure id='figure-{html.escape(figure.name)}'><img alt='{html.escape(figure.title)}' "
                     f"src='data:image/png;base64,{data}'><figcaption>{html.escape(figure.title)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
