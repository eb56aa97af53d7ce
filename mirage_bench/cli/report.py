"""``report``, ``leaderboard``, ``ablate`` and ``check``: what people read, computed from the prediction store."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mirage_bench.cli.console import console, say
from mirage_bench.cli.options import ProtocolDirs, RecipeDirs, Wide, as_list

_Store = typer.Option(Path("results/runs"), "--store", help="The output folder of the runs (prediction store and run records).")
_Boot = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% intervals (0: none).")
_Runs = typer.Argument(None, help="Run ids in the store ('latest' by default).")
EXIT_CHECK_FAILED = 1


def report(
    runs: Optional[List[str]] = _Runs, store: Path = _Store, n_boot: int = _Boot,
    out: Optional[Path] = typer.Option(None, "--out", help="New folder for the outputs (default: STORE/reports/RUN)."),
    figures: bool = typer.Option(True, help="Draw the heatmap, robustness curves and score histograms."),
    wide: bool = Wide,
) -> None:
    """Tables (Markdown, LaTeX, CSV, JSON) and one self-contained HTML page of one or more runs."""
    from mirage_bench.progress import progress_bars
    from mirage_bench.reports.render import print_table
    from mirage_bench.reports.report import build_report, write_report
    from mirage_bench.reports.runs import load_runs

    evidence = load_runs(store, as_list(runs))
    with progress_bars(console) as progress:
        result = build_report(evidence, n_boot=n_boot, with_figures=figures, progress=progress)
    paths = write_report(result, out or store / "reports" / "+".join(evidence.run_ids))
    print_table(console, result.tables[0], wide, f"{paths[0].parent}/{result.tables[0].name}.csv")
    console.print(f"wrote {len(paths)} files to {paths[0].parent} (open report.html)")


def leaderboard(
    store: Path = _Store, protocol: Optional[str] = typer.Option(None, "--protocol", help="Rank runs of this protocol."),
    out: Path = typer.Option(Path("results"), "--out", help="Folder for leaderboard.md and leaderboard.json."),
    n_boot: int = _Boot, wide: bool = Wide,
) -> None:
    """Rank detectors across the store's runs of one protocol version and data set."""
    from mirage_bench.reports import leaderboard as L
    from mirage_bench.reports.frames import print_frame

    board, evidence, paths = L.write_leaderboard(store, out, protocol, n_boot=n_boot)
    print_frame(console, L.display(board, evidence.metrics).drop(columns=["runs"]), L.title(evidence), L.notes(board, evidence),
                required=5, wide=wide, where=str(paths[1]))
    console.print(f"wrote {', '.join(map(str, paths))}")


def ablate(
    detector: str = typer.Option(..., "--detector", help="The full model; its variants are the cards with variant_of: DETECTOR."),
    protocol: str = typer.Option("mini", "--protocol", help="Protocol card name or YAML path."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Dataset root (default: the shipped mini set for mini protocols)."),
    seeds: str = typer.Option("0", "--seeds", help="Comma-separated training seeds."),
    store: Path = _Store, device: str = typer.Option("cpu", "--device"), n_boot: int = _Boot,
    recipes: Optional[List[Path]] = RecipeDirs, protocols: Optional[List[Path]] = ProtocolDirs, wide: bool = Wide,
) -> None:
    """Run (or reuse) the full model and each ablation variant; report each change with paired 95% intervals."""
    from mirage_bench.api import ablate as run_ablation
    from mirage_bench.progress import progress_bars
    from mirage_bench.reports.ablation import ablation_summary, ablation_table
    from mirage_bench.runconfig import RunConfig
    from mirage_bench.reports.frames import frame_markdown, print_frame
    from mirage_bench.reports.runs import load_runs
    from mirage_bench.store import atomic_write

    config = RunConfig.from_sources(None, {"protocol": protocol, "data_root": data_root, "seeds": seeds, "out": store, "device": device,
                                           "recipe_dirs": as_list(recipes), "protocol_dirs": as_list(protocols), "bootstrap": n_boot})
    with progress_bars(console) as progress:
        record = run_ablation(detector, config, progress=progress, notify=say)
    table = ablation_table(load_runs(store, [record.run_id]).cells, detector, n_boot=n_boot)
    summary = ablation_summary(table)
    title = f"Ablation of {detector} on {protocol}: change against the full model (points, paired 95% bootstrap interval)"
    run_dir = store / "runs" / record.run_id
    atomic_write(run_dir / "ablation.csv", lambda tmp: table.to_csv(tmp, index=False))
    atomic_write(run_dir / "ablation.md", lambda tmp: tmp.write_text(frame_markdown(summary, title)))
    print_frame(console, summary, title, required=3, wide=wide, where=str(run_dir / "ablation.csv"))
    console.print(f"every generator and degradation: {run_dir / 'ablation.csv'}")


def check(
    runs: Optional[List[str]] = _Runs, store: Path = _Store,
    baseline: Path = typer.Option(..., "--baseline", help="Baseline folder (e.g. results/baselines/mini)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="The baseline's test images (default: the shipped mini set for mini protocols)."),
    update: bool = typer.Option(False, "--update", help="Write the baseline from these runs instead of checking."),
    spread: Optional[List[Path]] = typer.Option(None, "--spread", help="With --update: a store whose latest run repeats these "
                                                "runs under other CPU kernels (repeatable); its seeds widen the tolerances."),
    wide: bool = Wide,
) -> None:
    """Check runs against a baseline: trained metrics within the measured spread, committed checkpoints' logits
    unchanged. Exit 1 listing what moved."""
    from mirage_bench.gate import check_gate, update_baseline
    from mirage_bench.gate.check import failures_frame
    from mirage_bench.reports.frames import print_frame

    if update:
        written = update_baseline(store, as_list(runs), baseline, as_list(spread))
        console.print(f"wrote baseline {baseline}: {len(written.trained.values)} trained values from "
                      f"{len(written.trained.samples)} samples ({written.trained.rule}); "
                      f"{len(written.scored.checkpoints)} checkpoints scored on {len(written.scored.degradations)} degradations")
        return
    if spread:
        raise typer.BadParameter("--spread is used with --update only", param_hint="--spread")
    result = check_gate(store, as_list(runs), baseline, data_root)
    logits = result.scored.logits
    ungated = "".join(f"; {u.detector} ({u.train_generators}) trained values not gated: {u.reason}" for u in result.trained.ungated)
    compared = (f"{len(result.trained.rows)} trained values within the measured spread, {int(logits['compared'].sum())} logits of "
                f"{len(logits)} committed checkpoints (largest difference {logits['max_abs_diff'].max():.2g}), "
                f"{len(result.scored.metrics)} metrics of the stored scores; baseline {baseline}{ungated}")
    if result.passed:
        console.print(f"check passed: {compared}")
        return
    for title, frame in failures_frame(result).items():
        if not frame.empty:
            print_frame(console, frame, f"check FAILED: {len(frame)} {title}", required=2, wide=wide, where="")
    console.print(compared)
    raise typer.Exit(EXIT_CHECK_FAILED)
