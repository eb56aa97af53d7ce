"""``weights fetch``: put published checkpoints in the local caches (verified), for nodes that run offline."""

from __future__ import annotations

from typing import List

import typer

from mirage_bench.cli.console import console

weights_app = typer.Typer(help="Published checkpoints: download and verify the authors' released weights.", no_args_is_help=True)


@weights_app.command("fetch")
def fetch(
    cards: List[str] = typer.Argument(..., help="Published card names (see `mirage-bench detectors list`)."),
    offline: bool = typer.Option(False, "--offline", help="Download nothing: check that each file is in place and verified."),
) -> None:
    """Download each card's file into the torch hub (or Hugging Face) cache, verified by sha256 before it is kept."""
    from mirage_bench.progress import progress_bars
    from mirage_bench.zoo.card import load_published
    from mirage_bench.zoo.fetch import resolve

    for card in [load_published(name) for name in cards]:  # every name checked before any download
        with progress_bars(console) as progress:
            local = resolve(card, offline=offline, progress=progress)
        console.print(f"{card.name}: {local.path} (sha256 {local.sha256})", highlight=False, soft_wrap=True)
