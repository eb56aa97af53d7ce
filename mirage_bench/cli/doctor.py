"""``mirage-bench doctor``: what this machine can run, and why not."""

from __future__ import annotations

import typer
from rich.table import Table

from mirage_bench.cli.console import console


def doctor(
    weights: str = typer.Option("ViT-L-14-quickgelu:openai", help="open_clip 'model:tag' whose cached weights to look for."),
) -> None:
    """Versions, device, bf16 support, open_clip, and whether pretrained weights are cached locally."""
    from mirage_bench.doctor import collect

    table = Table(title="mirage-bench doctor", show_header=False)
    table.add_column("check")
    table.add_column("result", overflow="fold")
    for key, value in collect(weights).items():
        table.add_row(key, value)
    console.print(table)
