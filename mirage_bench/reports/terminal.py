"""Rich tables that fit the terminal: columns that do not fit are left out and named, never wrapped into a
column of broken numbers; ``--wide`` prints them all. Files (CSV, JSON, Markdown) always carry every column.

Why: in a pipe or a log file rich assumes 80 characters and squeezes a table of eight generators until each
cell wraps over several lines.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

#: build(columns shown, note) -> a rich renderable
Build = Callable[[Sequence[str], str], Any]


def _natural_width(console: Any, table: Any) -> int:
    """The width ``table`` takes with no cell wrapped (rich clamps a plain measure to the console's width)."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update(width=1 << 20), table).maximum


def print_fitted(console: Any, build: Build, columns: Sequence[str], required: Sequence[str] = (), wide: bool = False,
                 where: str = "the written files") -> None:
    """Print ``build(shown, note)`` with as many of ``columns`` as fit ``console.width`` (``required`` ones always,
    the others dropped from the right), the note naming those left out; ``wide``: every column, at its full width."""
    if wide:
        table = build(list(columns), "")
        width = console.width
        console.width = max(width, _natural_width(console, table))  # print() clamps its own width to the console's
        try:
            console.print(table)
        finally:
            console.width = width
        return
    shown = list(columns)
    while True:
        hidden = [c for c in columns if c not in shown]
        note = (f"{len(hidden)} column(s) left out to fit {console.width} characters ({', '.join(hidden)}); "
                + (f"every column is in {where}; " if where else "") + "--wide prints them here") if hidden else ""
        table = build(shown, note)
        droppable = [c for c in shown if c not in required]
        if _natural_width(console, table) <= console.width or not droppable:
            break
        shown.remove(droppable[-1])
    console.print(table)
