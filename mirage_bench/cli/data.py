"""``data index/verify/stats``: read a dataset as distributed, list what cannot be used, describe it."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from mirage_bench.cli.console import console
from mirage_bench.cli.options import ProtocolDirs, as_list
from mirage_bench.machine import usable_cores

data_app = typer.Typer(help="Benchmark data: index, verify and describe dataset folders.", no_args_is_help=True)

Root = typer.Argument(..., help="Data root (a folder as distributed, or a manifest.csv/.jsonl).")
LayoutOpt = typer.Option("auto", "--layout", help="Layout name, or 'auto': the --protocol card's layout, else detected.")
ProtocolOpt = typer.Option(None, "--protocol", help="Protocol card: resolves folder names and checks counts against it.")
StrictOpt = typer.Option(False, "--strict", help="Any file that cannot be used is an error.")
WorkersOpt = typer.Option(min(16, usable_cores()), "--workers", min=1,
                          help="Processes decoding images (default: every core, at most 16; small roots decode in this process).")


def _scan(root: Path, layout: str, protocol: Optional[str], protocols: Optional[List[Path]], strict: bool, workers: int):
    from mirage_bench.data import build_manifest
    from mirage_bench.progress import progress_bars
    from mirage_bench.protocol import load_protocol

    card = load_protocol(protocol, (), as_list(protocols)) if protocol else None
    from_card = card is not None and layout == "auto" and card.layout != "auto"
    if from_card:
        layout = card.layout  # read the root as a run with this card reads it
    with progress_bars(console) as progress:
        manifest, exclusions = build_manifest(root, layout=layout, protocol=card, strict=strict, workers=workers, progress=progress)
    reason = f"named by protocol {card.name!r}" if from_card else manifest.attrs["layout_reason"]
    console.print(f"layout {manifest.attrs['layout']} ({reason})", highlight=False, soft_wrap=True)
    return card, manifest, exclusions


def _print_exclusions(exclusions) -> None:
    from mirage_bench.data.manifest import NOT_DATA

    for row in exclusions.itertuples():
        verb = "skipped" if row.kind == NOT_DATA else "excluded"
        console.print(f"  {verb} {row.rel_path} ({row.kind}): {row.reason}", markup=False, highlight=False, soft_wrap=True)


@data_app.command("index")
def index(
    root: Path = Root,
    out: Optional[Path] = typer.Option(None, "--out", help="Parquet manifest to write (default: ./ROOTNAME.manifest.parquet); never overwritten."),
    layout: str = LayoutOpt,
    protocol: Optional[str] = ProtocolOpt,
    protocols: Optional[List[Path]] = ProtocolDirs,
    strict: bool = StrictOpt,
    workers: int = WorkersOpt,
) -> None:
    """Decode and hash every image under ROOT and write a Parquet manifest (plus a CSV of exclusions)."""
    from mirage_bench.data import write_manifest
    from mirage_bench.data.manifest import excluded_phrase
    from mirage_bench.errors import DataError

    out = out or Path(f"{root.resolve().name}.manifest.parquet")
    excluded_path = out.with_suffix(".exclusions.csv")
    for path in (out, excluded_path):
        if path.exists():
            raise DataError(f"{path} already exists; refusing to overwrite it. Remove it or choose another --out.")
    _, manifest, exclusions = _scan(root, layout, protocol, protocols, strict, workers)
    write_manifest(manifest, out)
    exclusions.to_csv(excluded_path, index=False)
    console.print(f"wrote {out}: {len(manifest)} images; {excluded_phrase(exclusions)}, listed in {excluded_path}", highlight=False, soft_wrap=True)


@data_app.command("verify")
def verify(
    root: Path = Root,
    layout: str = LayoutOpt,
    protocol: Optional[str] = ProtocolOpt,
    protocols: Optional[List[Path]] = ProtocolDirs,
    strict: bool = StrictOpt,
    workers: int = WorkersOpt,
) -> None:
    """Fully decode every image under ROOT; list every file that cannot be used, with the reason."""
    from mirage_bench.data import check_counts
    from mirage_bench.data.manifest import excluded_phrase

    card, manifest, exclusions = _scan(root, layout, protocol, protocols, strict, workers)
    console.print(f"{len(manifest)} usable images, {excluded_phrase(exclusions)}", highlight=False)
    _print_exclusions(exclusions)
    if card is not None:
        for note in check_counts(card, manifest, exclusions):
            console.print(f"note: {note}", markup=False, highlight=False, soft_wrap=True)
        console.print(f"generators and counts match protocol {card.name} v{card.version}", highlight=False)


@data_app.command("stats")
def stats(
    source: Path = typer.Argument(..., help="A Parquet manifest written by `data index`, or a data root."),
    layout: str = LayoutOpt,
    protocol: Optional[str] = ProtocolOpt,
    protocols: Optional[List[Path]] = ProtocolDirs,
    workers: int = WorkersOpt,
) -> None:
    """Counts, formats and sizes per generator and label; warns where reals and fakes differ."""
    from mirage_bench.data import read_manifest
    from mirage_bench.data.manifest import excluded_phrase
    from mirage_bench.data.stats import data_stats

    if source.suffix == ".parquet":
        manifest = read_manifest(source)
    else:
        _, manifest, exclusions = _scan(source, layout, protocol, protocols, False, workers)
        console.print(f"{excluded_phrase(exclusions)} (run `data verify` for the list)", highlight=False)
    result = data_stats(manifest)
    table = Table(title=f"{len(manifest)} images")
    for column in result.table.columns:
        table.add_column(column.replace("_", " "), overflow="fold")
    for row in result.table.itertuples(index=False):
        table.add_row(*map(str, row))
    console.print(table)
    for warning in result.warnings:
        console.print(f"warning: {warning}", style="yellow", markup=False, highlight=False, soft_wrap=True)
