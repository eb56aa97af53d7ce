"""``mirage-bench data mini``: build the built-in mini benchmark (reals + four locally trained generators)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mirage_bench.cli.console import console


def mini(
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write the set (default: the shipped set inside the package)."),
    size: int = typer.Option(32, "--size", help="Image side in px (a power of two >= 8)."),
    per_generator: int = typer.Option(160, "--per-generator", help="Train-split fakes (and reals) per generator; val gets 40% of it."),
    device: str = typer.Option("cpu", "--device", help="cpu or cuda (cuda for larger sets)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random draw; same seed, same machine -> same set."),
    threads: int = typer.Option(1, "--threads", help="torch CPU threads; the set may depend on it (recorded in the card)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing set at --out (built aside, then swapped in)."),
) -> None:
    """Train the four small generators (GAN, VAE, diffusion, autoencoder) and write the mini set in GenImage layout."""
    from mirage_bench.mini import default_root
    from mirage_bench.mini.build import build_mini
    from mirage_bench.progress import progress_bars

    root = out if out is not None else default_root()
    with progress_bars(console) as progress:
        result = build_mini(root, size=size, per_generator=per_generator, device=device, seed=seed, force=force,
                            progress=progress, threads=threads)
    card = result.card
    state = "reused (knobs match; --force rebuilds)" if result.cached else f"built in {card['timings']['total_seconds']:.0f} s"
    console.print(f"mini set {card['version']} at {result.root}: {state}")
    for key, entry in card["generators"].items():
        loss = entry["losses"][entry["objective"]]
        console.print(f"  {key:<8} {entry['family']:<12} {entry['objective']}: {loss['first']:.4g} -> {loss['last']:.4g}")
    console.print(f"contact sheet: {result.root / 'contact_sheet.png'}")
