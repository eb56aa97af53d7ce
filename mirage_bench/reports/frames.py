"""Plain result frames (leaderboards, ablations, check diffs) as Markdown and rich tables."""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd


def _text(value: Any) -> str:
    if isinstance(value, float):
        return "–" if pd.isna(value) else f"{value:.2f}"
    return str(value)


def frame_markdown(frame: pd.DataFrame, title: str = "", notes: Sequence[str] = ()) -> str:
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "|".join(["--"] * len(frame.columns)) + "|"]
    lines += ["| " + " | ".join(_text(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    lines += [""] + [f"{note}  " for note in notes] if notes else []
    return "\n".join(lines).rstrip() + "\n"


def frame_rich(frame: pd.DataFrame, title: str = "", notes: Sequence[str] = ()) -> Any:
    from rich.table import Table
    from rich.text import Text

    # Plain Text throughout: values are data, never rich markup or emoji codes.
    table = Table(title=Text(title) if title else None, caption=Text("\n".join(notes)) if notes else None)
    for column in frame.columns:
        table.add_column(Text(str(column)), overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(Text(_text(v)) for v in row))
    return table


def print_frame(console: Any, frame: pd.DataFrame, title: str = "", notes: Sequence[str] = (), required: int = 1,
                wide: bool = False, where: str = "the written files") -> None:
    """Print ``frame`` fitted to the terminal (its first ``required`` columns kept), or every column with ``wide``."""
    from mirage_bench.reports.terminal import print_fitted

    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    print_fitted(console, lambda shown, note: frame_rich(frame[list(shown)], title, [*notes, note] if note else notes),
                 columns, columns[:required], wide, where)
