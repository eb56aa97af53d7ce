"""The library's entry points: ``run(config) -> RunRecord``, ``plan(config)``, ``ablate(full, config)`` and
``report(out, run_ids)``.

``mirage-bench run/train/eval`` and ``ablate``, the benchmarks and the tests call these; the CLI only turns flags
into a :class:`~mirage_bench.runconfig.RunConfig` and prints what comes back. In a notebook::

    import mirage_bench as mb
    record = mb.run(mb.RunConfig(detectors=["tinycnn"]))
    metrics = record.report.long  # every metric of every cell, a DataFrame (also in runs/<run_id>/metrics.csv)
"""

from __future__ import annotations

import hashlib
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Callable, Sequence

import pandas as pd

from mirage_bench import distributed
from mirage_bench.cluster.launch import describe_jobs, execute_jobs, plan_jobs
from mirage_bench.data.facts_cache import FactsCache
from mirage_bench.data.images import MAX_PIXELS
from mirage_bench.data.own import BuiltProtocol, protocol_from_folder, protocol_yaml
from mirage_bench.engine.benchmark import Benchmark, Cards, load_benchmark
from mirage_bench.engine.preflight import check_writable
from mirage_bench.engine.record import RunRecord
from mirage_bench.engine.runner import Options, describe_plan, evaluation_impl, execute, preflight, summarize_plan
from mirage_bench.engine.store_lock import hold_store
from mirage_bench.errors import ConfigError, StorageError
from mirage_bench.progress import Progress, no_progress
from mirage_bench.reports.ablation import find_variants
from mirage_bench.reports.report import Report, build_report
from mirage_bench.reports.runs import load_runs
from mirage_bench.runconfig import RunConfig
from mirage_bench.store import Store, atomic_write

Notify = Callable[[str], None]


def options_of(config: RunConfig) -> Options:
    """The engine's options for ``config``."""
    return Options(out=config.out, device=config.device, workers=config.workers, impl=config.impl, compile=config.compile,
                   wait=config.wait)


def read_benchmark(config: RunConfig, store: Store, *, writes: bool, held: ExitStack | None = None,
                   keep_facts: bool = True, progress: Progress = no_progress) -> Benchmark:
    """The cards, checked before any data file is read (options, weights files, the output folder; with ``held``,
    the output folder's lock is taken there and kept until ``held`` closes), then the data. What earlier scans of
    unchanged files found is reused from the store's facts cache, and with ``keep_facts`` what this scan decodes is
    kept there. With ``train_generators``, the protocol is built from ``data_root`` (``data.own``), kept as a card in
    ``out/protocols/`` (a dry run's in a temporary folder), and each choice it made is a note of the data it read."""
    options = options_of(config)
    on_cluster = config.launcher.kind != "local"

    def check(cards: Cards) -> None:
        preflight(cards, options, writes=writes, device_here=not on_cluster)  # Slurm jobs check their own GPU
        if held is not None:
            held.enter_context(hold_store(config.out, wait=config.wait))

    with ExitStack() as scratch, FactsCache(store.facts_path(), MAX_PIXELS, writable=keep_facts) as facts:
        protocol, choices = None, []
        if config.train_generators is not None:  # own data: the protocol is built from the folder and kept as a card
            built = protocol_from_folder(config.data_root, config.train_generators, config.test_generators, progress=progress)
            folder = config.out / "protocols" if writes else Path(scratch.enter_context(TemporaryDirectory()))
            protocol, choices = str(keep_card(built, folder)), built.choices
        bench = load_benchmark(config, protocol=protocol, facts=facts, check=check, progress=progress)
    if choices:
        bench.sources[0].notes[:0] = [f"protocol built from {config.data_root}: {choice}" for choice in choices]
    return bench


def keep_card(built: BuiltProtocol, folder: Path) -> Path:
    """Write a built protocol as a card in ``folder``, named by its content (a rebuilt identical card is the same
    file; a different one never replaces it), and return its path."""
    text = protocol_yaml(built)
    path = folder / f"{built.card.name}-{hashlib.sha256(text.encode()).hexdigest()[:8]}.yaml"
    if not path.is_file():
        atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def announce_data(bench: Benchmark, notify: Notify) -> None:
    """What reading the data found (roots, notes, warnings, exclusions), one line each; under torchrun, rank 0 alone."""
    if distributed.is_main():
        for source in bench.sources:
            for line in source.lines():
                notify(line)


def run(config: RunConfig, *, progress: Progress = no_progress, notify: Notify = print) -> RunRecord:
    """Train what is missing, score what is missing, write the run record and, when the run evaluates, its
    ``metrics.csv``; returns the record (on every torchrun rank; rank 0 writes). ``notify`` gets the lines a user
    should read (what the data scan found, waiting for another run's lock, cluster job counts)."""
    if not (config.train or config.evaluate):
        raise ConfigError("a run with train: false and evaluate: false does nothing; set one of them")
    if config.launcher.kind != "local":
        config.launcher.check_scheduler()
    store = Store(config.out, repair=True)
    options = options_of(config)
    with ExitStack() as held:
        bench = read_benchmark(config, store, writes=True, held=held, progress=progress)
        announce_data(bench, notify)
        if config.launcher.kind != "local":
            record = execute_jobs(bench, options, config.launcher, train=config.train, evaluate=config.evaluate, notify=notify)
        else:
            record = execute(bench, options, train=config.train, evaluate=config.evaluate, progress=progress, checked=True)
        if config.evaluate and distributed.is_main():
            metrics = report(config.out, [record.run_id], bootstrap=config.bootstrap)
            long = metrics.long
            atomic_write(store.run_dir(record.run_id) / "metrics.csv", lambda tmp: long.to_csv(tmp, index=False))
            record.attach_report(metrics)
    return record


def ablate(full: str, config: RunConfig, *, progress: Progress = no_progress, notify: Notify = print) -> RunRecord:
    """Run (or reuse) the full model and each of its ablation variants (the cards whose ``variant_of`` names it) on
    ``config``'s protocol, data and seeds; ``config``'s own detectors are replaced by them."""
    detectors = [full, *find_variants(full, config.recipe_dirs)]
    return run(config.model_copy(update={"detectors": detectors, "train": True, "evaluate": True}), progress=progress, notify=notify)


@dataclass
class RunPlan:
    """What a run would do (``--dry-run``): every cell with its status, one row per model, or the scheduler jobs."""

    benchmark: Benchmark
    cells: pd.DataFrame  # describe_plan: one row per cell
    models: pd.DataFrame  # summarize_plan: one row per (detector, training set, seed)
    jobs: list[str]  # with a cluster launcher: the jobs it would submit, one line each

    def cell_counts(self) -> tuple[int, int]:
        """Training cells and evaluation cells of the plan."""
        bench = self.benchmark
        models = int((self.cells["kind"] == "train").sum())
        return models, models * len(bench.protocol.test) * len(bench.degradations)


def plan(config: RunConfig, *, notify: Notify = print) -> RunPlan:
    """What ``run(config)`` would train and score, from the store as it is; trains and scores nothing and writes no
    result. What it decodes is kept in the store's facts cache, so the run that follows does not decode it again
    (unless ``out`` cannot be written: then it says so and keeps nothing)."""
    store = Store(config.out, repair=False)
    try:
        check_writable(config.out)
        keep_facts = True
    except StorageError as exc:
        notify(f"note: this dry run keeps none of the image facts it decodes ({exc})")
        keep_facts = False
    bench = read_benchmark(config, store, writes=False, keep_facts=keep_facts)
    announce_data(bench, notify)
    options = options_of(config)
    impl = evaluation_impl(bench, options, options.device)
    jobs: list[str] = []
    if config.launcher.kind != "local":
        jobs = describe_jobs(plan_jobs(bench, store, impl, config.train, config.evaluate), config.launcher)
    cells = describe_plan(bench, store, impl)
    return RunPlan(bench, cells, summarize_plan(bench, cells), jobs)


def report(out: str | Path, run_ids: Sequence[str], *, bootstrap: int = 1000, with_figures: bool = False) -> Report:
    """The tables (and, with ``with_figures``, the figures) of runs in the store at ``out``, computed from their stored
    predictions."""
    return build_report(load_runs(out, list(run_ids)), n_boot=bootstrap, with_figures=with_figures)
