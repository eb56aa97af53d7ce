"""``degradations list/show/sheet``: the degradation library, the papers' presets and what they look like."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from mirage_bench.cli.console import console

degradations_app = typer.Typer(help="Image degradations, the papers' presets and contact sheets.", no_args_is_help=True)


@degradations_app.command("list")
def degradations_list() -> None:
    """List the evaluation presets, the training augmentations and the degradation kinds."""
    from mirage_bench.degradations import AUGMENT_PRESETS, DEGRADATIONS, PRESETS

    presets = Table(title="Evaluation presets (applied at native resolution, before the detector's preprocessing)")
    for column in ("preset", "degradations", "source"):
        presets.add_column(column, overflow="fold")
    for name in PRESETS.names():
        preset = PRESETS.get(name)
        presets.add_row(name, "\n".join(preset.specs), preset.citation)
    console.print(presets)

    augment = Table(title="Training augmentations (train.augment)")
    for column in ("name", "spec", "source"):
        augment.add_column(column, overflow="fold")
    for name in AUGMENT_PRESETS.names():
        entry = AUGMENT_PRESETS.get(name)
        augment.add_row(name, entry.spec, entry.citation)
    console.print(augment)

    kinds = Table(title="Degradation kinds (write specs such as jpeg(q=65) or chain(blur(s=2),jpeg(q=50)))")
    kinds.add_column("kind")
    kinds.add_column("what it does", overflow="fold")
    for name in DEGRADATIONS.names():
        kinds.add_row(name, _first_paragraph(DEGRADATIONS.get(name).__doc__))
    console.print(kinds)


@degradations_app.command("show")
def degradations_show(name: str = typer.Argument(..., help="A preset, a training augmentation or a spec.")) -> None:
    """Print a preset's exact degradations (or one spec's canonical form) and how they are computed."""
    from mirage_bench.degradations import AUGMENT_PRESETS, PRESETS, augment, expand

    if name in AUGMENT_PRESETS:
        entry = AUGMENT_PRESETS.get(name)
        policy = augment(entry.spec)
        console.print(f"[bold]{name}[/] (training augmentation): {entry.spec}", highlight=False)
        console.print(f"source: {entry.citation}\n{entry.notes}\n\n{_text(type(policy).__doc__)}", highlight=False)
        return
    if name in PRESETS:
        preset = PRESETS.get(name)
        console.print(f"[bold]{name}[/]: {len(preset.specs)} degradations", highlight=False)
        console.print(f"source: {preset.citation}", highlight=False)
        if preset.notes:
            console.print(f"notes: {preset.notes}", highlight=False)
    degradations = expand([name])
    table = Table()
    table.add_column("spec (canonical)")
    table.add_column("uses the seed")
    for degradation in degradations:
        table.add_row(degradation.spec, "yes" if degradation.is_random else "no")
    console.print(table)
    classes = {type(step): None for degradation in degradations for step in _steps(degradation)}
    for cls in classes:
        console.print(f"[bold]{cls.kind}[/]: {_text(cls.__doc__)}", highlight=False)


def _steps(degradation):
    """The degradation's own class, then those of its steps (for chains)."""
    return [degradation, *getattr(degradation, "steps", ())]


@degradations_app.command("sheet")
def degradations_sheet(
    names: List[str] = typer.Argument(..., help="Preset name(s) or spec(s), e.g. genimage or 'jpeg(q=30)'."),
    out: Path = typer.Option(..., "--out", help="PNG file to write."),
    image: Optional[Path] = typer.Option(None, "--image", help="Photo to degrade (default: skimage's astronaut)."),
    seed: int = typer.Option(0, help="Base seed (matters only for random degradations)."),
    overwrite: bool = typer.Option(False, help="Replace --out if it exists."),
) -> None:
    """Render one image under every degradation of a preset (the clean image first) to a PNG."""
    from mirage_bench.degradations.sheet import write_contact_sheet

    path = write_contact_sheet(names, out, image_path=image, seed=seed, overwrite=overwrite)
    console.print(f"wrote {path}", highlight=False)


def _text(doc: str | None) -> str:
    return " ".join((doc or "").split())


def _first_paragraph(doc: str | None) -> str:
    return _text((doc or "").strip().split("\n\n")[0])
