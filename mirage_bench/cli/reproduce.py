"""``reproduce CARD --data-root DIR``: a published checkpoint scored here, beside the numbers its authors report."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from mirage_bench.cli.console import console
from mirage_bench.cli.options import Overrides, as_list


def reproduce(
    card: str = typer.Argument(..., help="Published card name (see `mirage-bench detectors list`) or path."),
    data_root: Path = typer.Option(..., "--data-root", help="The protocol's data (its test subsets are read)."),
    protocol: Optional[str] = typer.Option(None, help="Which of the card's published protocols (default: its only one)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="The published file, instead of the cache."),
    offline: bool = typer.Option(False, "--offline", help="Download nothing; use the cached (or --weights) file."),
    overrides: Optional[List[str]] = Overrides,
    device: str = typer.Option("cpu", help="cpu, cuda, cuda:1 ..."),
    batch_size: int = typer.Option(64, min=1),
    workers: int = typer.Option(0, min=0, help="Decoding processes (0: in this process)."),
) -> None:
    """Score a published checkpoint per generator and print ours, the paper's and the difference (points)."""
    from mirage_bench.zoo.card import load_published
    from mirage_bench.zoo.reproduce import reproduce as run

    frame = run(load_published(card), data_root, protocol, weights, offline, as_list(overrides), device, batch_size, workers)
    attrs = frame.attrs
    random = " - RANDOM backbone (--set backbone.pretrained=none): not the authors' model" if attrs["random_backbone"] else ""
    table = Table(title=f"{attrs['label']} on {attrs['protocol']}: ours vs {attrs['source']}{random}")
    for column in frame.columns:
        table.add_column(column, justify="right")
    for row in frame.itertuples(index=False):
        table.add_row(*("FLAG" if v is True else "" if v is False else "-" if v is None or v != v else
                        f"{v:+.1f}" if name.endswith("diff") else f"{v:.1f}" if isinstance(v, float) else str(v)
                        for name, v in zip(frame.columns, row)))
    console.print(table)
    flagged = int(frame["beyond tolerance"].sum())
    console.print(f"{flagged} of {len(frame)} generators differ by more than {attrs['tolerance']} points (FLAG)", highlight=False)
