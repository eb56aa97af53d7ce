"""``detectors list/show`` and ``protocols list/show``: what is available, fully resolved."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
import yaml
from rich.table import Table

from mirage_bench.cli.console import console, say
from mirage_bench.cli.options import Overrides, ProtocolDirs, RecipeDirs, as_list

detectors_app = typer.Typer(help="Detector recipe cards and their implementations.", no_args_is_help=True)
protocols_app = typer.Typer(help="Benchmark protocol cards.", no_args_is_help=True)


@detectors_app.command("list")
def detectors_list(
    recipes: Optional[List[Path]] = RecipeDirs,
    count: bool = typer.Option(True, help="Build each detector on the meta device to count trainable parameters."),
) -> None:
    """List every recipe card with its implementation, backbone, trainable parameters and citation."""
    from mirage_bench.cards import list_recipes
    from mirage_bench.detectors import DETECTORS
    from mirage_bench.detectors.infra.inspect import count_trainable

    table = Table(title="Detectors", show_lines=False)
    for column in ("card", "implementation", "backbone", "trainable params", "citation"):
        table.add_column(column, overflow="fold")
    cards = list_recipes(as_list(recipes))
    for recipe in cards:
        backbone = f"{recipe.backbone.name} ({recipe.backbone.pretrained})" if recipe.backbone else "-"
        params = f"{count_trainable(recipe):,}" if count else "-"
        table.add_row(recipe.name, recipe.detector, backbone, params, recipe.citation)
    for name in sorted(set(DETECTORS.names()) - {r.detector for r in cards}):
        table.add_row("(no card)", name, "-", "-", f"registered by {DETECTORS.origin(name)}; add a card with --recipes DIR")
    console.print(table)
    _published_table()


def _published_table() -> None:
    """The authors' released checkpoints (eval only), apart from the recipes trained here."""
    from mirage_bench.zoo.card import list_published

    table = Table(title="Published checkpoints (eval only: the authors' weights, never trained here)")
    for column in ("card", "loads into", "licence", "source", "sha256"):
        table.add_column(column, overflow="fold")
    for card in list_published():
        sha = card.weights.sha256[:12] if card.weights.sha256 else "unpinned"
        table.add_row(card.name, f"{card.recipe} ({card.detector})", card.licence, card.source_short, sha)
    console.print(table)


@detectors_app.command("show")
def detectors_show(
    name: str = typer.Argument(..., help="Card name or path to a YAML card."),
    recipes: Optional[List[Path]] = RecipeDirs,
    overrides: Optional[List[str]] = Overrides,
) -> None:
    """Print a recipe card resolved: defaults < card (and its base) < --set; or a published card as written."""
    from mirage_bench.cards import load_recipe
    from mirage_bench.zoo.card import load_published, published_paths

    if name in published_paths():
        if overrides:
            from mirage_bench.errors import ConfigError

            raise ConfigError(f"{name!r} is a published card, shown as written; --set applies to recipe cards "
                              f"(show its recipe instead: `mirage-bench detectors show {load_published(name).recipe} --set ...`)")
        typer.echo(yaml.safe_dump(load_published(name).model_dump(mode="json", exclude={"path"}), sort_keys=False), nl=False)
        return
    recipe = load_recipe(name, as_list(overrides), as_list(recipes))
    typer.echo(yaml.safe_dump(recipe.model_dump(mode="json"), sort_keys=False), nl=False)


@protocols_app.command("list")
def protocols_list(protocols: Optional[List[Path]] = ProtocolDirs) -> None:
    """List every protocol card."""
    from mirage_bench.protocol import list_protocols

    table = Table(title="Protocols")
    for column in ("card", "version", "layout", "train", "test", "description"):
        table.add_column(column, overflow="fold")
    for card in list_protocols(as_list(protocols)):
        table.add_row(card.name, str(card.version), card.layout, ", ".join(card.train), f"{len(card.test)} subsets", card.description)
    console.print(table)


@protocols_app.command("show")
def protocols_show(
    name: str = typer.Argument(..., help="Card name or path to a YAML card."),
    protocols: Optional[List[Path]] = ProtocolDirs,
    overrides: Optional[List[str]] = Overrides,
) -> None:
    """Print a protocol card resolved."""
    from mirage_bench.protocol import load_protocol

    card = load_protocol(name, as_list(overrides), as_list(protocols))
    typer.echo(yaml.safe_dump(card.model_dump(mode="json"), sort_keys=False), nl=False)


@protocols_app.command("new")
def protocols_new(
    root: Path = typer.Argument(..., help="Your data folder (any layout `data verify` reads) or manifest list."),
    out: Path = typer.Option(..., "--out", help="Card to write (YAML); an existing file is never overwritten."),
    train: Optional[str] = typer.Option(None, "--train", help="Comma-separated generator folders to train on."),
    test: Optional[str] = typer.Option(None, "--test", help="Comma-separated generator folders to test on "
                                       "(default: every generator not trained on, the unseen generators)."),
    layout: str = typer.Option("auto", "--layout", help="Layout name, or 'auto' to detect it."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the carved train/test split and of validation."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Share of a training generator's files held out "
                                        "for test, when the folder has no split folders."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of the training split used for validation."),
    rows: Optional[List[str]] = typer.Option(None, "--rows", help="Manifest lists: read only rows whose COLUMN holds "
                                             "one of the values: --rows layout=genimage (repeatable)."),
    name: Optional[str] = typer.Option(None, "--name", help="The card's name (default: ROOTNAME-train-A+B)."),
) -> None:
    """Write a protocol card for your own folder: layout detected, generators found, splits read or carved."""
    from mirage_bench.data.own import protocol_from_folder, protocol_yaml
    from mirage_bench.errors import ConfigError
    from mirage_bench.progress import progress_bars
    from mirage_bench.protocol import load_protocol

    if out.exists():
        raise ConfigError(f"{out} already exists; refusing to overwrite it. Remove it or choose another --out.")
    with progress_bars(console) as progress:
        built = protocol_from_folder(root, _names(train), _names(test) if test is not None else None, layout,
                                     split_seed=split_seed, test_fraction=test_fraction, val_fraction=val_fraction,
                                     rows=_rows(as_list(rows)), name=name, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("x", encoding="utf-8") as handle:  # "x": never overwrite, even a file made meanwhile
        handle.write(protocol_yaml(built))
    loaded = load_protocol(str(out))
    if loaded.model_dump(exclude={"source"}) != built.card.model_dump(exclude={"source"}):
        raise ConfigError(f"{out} does not load back as the protocol it was written from (a bug: please report it)")
    for choice in built.choices:
        say(f"- {choice}")
    say(f"wrote {out}: protocol {loaded.name!r}; run it with `mirage-bench run --protocol {out} --data-root {root} --detectors ...`")


def _names(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _rows(pairs: list[str]) -> dict[str, list[str]]:
    """``["layout=genimage", "source=a,b"]`` -> {"layout": ["genimage"], "source": ["a", "b"]}."""
    from mirage_bench.errors import ConfigError

    picked: dict[str, list[str]] = {}
    for pair in pairs:
        column, sep, values = pair.partition("=")
        if not sep or not column.strip() or not _names(values):
            raise ConfigError(f"--rows {pair!r}: expected COLUMN=VALUE[,VALUE...], e.g. --rows layout=genimage")
        picked.setdefault(column.strip(), []).extend(_names(values))
    return picked
