"""``predict`` (per-image p_fake from a checkpoint) and ``score-file`` (scores-only submissions)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mirage_bench.cli.console import console, err_console
from mirage_bench.cli.options import ProtocolDirs, as_list


def predict(
    paths: List[Path] = typer.Argument(..., help="Image files, folders (recursive) or CSV lists with a 'path' column."),
    checkpoint: Path = typer.Option(..., "--checkpoint", help="A checkpoint written by `mirage-bench train`."),
    fmt: str = typer.Option("csv", "--format", help="csv or json."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write here instead of printing."),
    device: str = typer.Option("cpu", "--device"),
    strict: bool = typer.Option(False, "--strict", help="Refuse (exit 2, naming every file) instead of skipping files "
                                "that cannot be scored."),
) -> None:
    """Per-image p_fake, the checkpoint's calibrated threshold and the label it implies.

    Inputs are read as a run reads its data: hidden files and folders, links that leave the folder or dangle,
    folders named like images and files that are no decodable image are skipped and listed on stderr."""
    from mirage_bench.errors import ConfigError
    from mirage_bench.reports.predict import predict as run
    from mirage_bench.store import atomic_write

    if fmt not in {"csv", "json"}:
        raise ConfigError(f"--format {fmt!r}: choose csv or json")
    predictions = run(paths, checkpoint, device, strict=strict)
    for line in predictions.inputs.summary():
        err_console.print(line, markup=False, highlight=False, soft_wrap=True)
    frame = predictions.frame
    text = frame.to_csv(index=False) if fmt == "csv" else frame.to_json(orient="records", indent=2, double_precision=15) + "\n"
    if out is None:
        console.print(text, end="", markup=False, highlight=False, soft_wrap=True)
    else:
        atomic_write(out, lambda tmp: tmp.write_text(text))
        console.print(f"wrote {len(frame)} predictions to {out}")


def score_file(
    scores: Path = typer.Argument(..., help="CSV: image_id or rel_path, score, optional degradation."),
    protocol: str = typer.Option(..., "--protocol", help="The protocol whose test images were scored."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="The protocol's data root (mini: shipped)."),
    manifest: Optional[Path] = typer.Option(None, "--manifest", help="A manifest Parquet file instead of --data-root."),
    name: str = typer.Option("submission", "--name", help="The detector's name in the tables."),
    scores_are: str = typer.Option("probabilities", "--scores-are", help="probabilities (of fake, in [0, 1]) or logits."),
    threshold: Optional[float] = typer.Option(None, "--threshold", help="Your calibrated threshold, for Acc@cal."),
    out: Optional[Path] = typer.Option(None, "--out", help="New folder for the report (default: results/submissions/NAME)."),
    n_boot: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% intervals (0: none)."),
    protocols: Optional[List[Path]] = ProtocolDirs,
) -> None:
    """Check per-image scores of any detector against the protocol's manifest and report them like a run."""
    from mirage_bench.errors import ConfigError
    from mirage_bench.reports.render import rich_table
    from mirage_bench.reports.report import build_report, write_report
    from mirage_bench.reports.submission import protocol_test_sets, submission_evidence

    if scores_are not in {"probabilities", "logits"}:
        raise ConfigError(f"--scores-are {scores_are!r}: choose probabilities or logits")
    card, test = protocol_test_sets(protocol, data_root, manifest, tuple(as_list(protocols)))
    evidence = submission_evidence(scores, test, card.name, card.version, name, threshold, scores_are,  # type: ignore[arg-type]
                                   card.metrics)
    result = build_report(evidence, n_boot=n_boot)
    paths = write_report(result, out or Path("results/submissions") / name)
    console.print(rich_table(result.tables[0]))
    console.print(f"wrote {len(paths)} files to {paths[0].parent}")
