"""``mirage-bench train``, ``eval`` and ``run``: the benchmark matrix, resumable, from the prediction store."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from mirage_bench.cli.console import console
from mirage_bench.cli.options import Overrides, ProtocolDirs, RecipeDirs, as_list
from mirage_bench.errors import ConfigError

_Protocol = typer.Option("mini", "--protocol", help="Protocol card name or YAML path.")
_Detectors = typer.Option(None, "--detectors", help="Comma-separated recipe cards (default: the protocol card's 'detectors').")
_DataRoot = typer.Option(None, "--data-root", help="Dataset root (default: the shipped mini set for mini protocols).")
_TrainDataRoot = typer.Option(None, "--train-data-root", help="Root of the training data: the protocol's training generators, or for a "
                              "test-only protocol (train_from) the named card's (default: --data-root).")
_Out = typer.Option(Path("results/runs"), "--out", help="Output folder: checkpoints, prediction store, run records.")
_Seeds = typer.Option("0", "--seeds", help="Comma-separated training seeds, e.g. 0,1,2.")
_Device = typer.Option("cpu", "--device", help="cpu, cuda or cuda:N (torchrun gives each rank its own GPU).")
_DryRun = typer.Option(False, "--dry-run", help="Show what each model still needs (training, evaluation cells); run nothing.")
_Cells = typer.Option(False, "--cells", help="With --dry-run: list every cell with its id and status instead of one row per model.")
_Workers = typer.Option(None, "--workers", help="Data-loading worker processes (default: on CUDA all cores but one, at most 16; on CPU none).")
_Backbone = typer.Option(None, "--backbone", help="Backbone architecture for recipes that have one (e.g. ViT-L-14).")
_Pretrained = typer.Option(None, "--pretrained", help="Pretrained tag or weights file for that backbone (e.g. openai).")
_Impl = typer.Option("auto", "--impl", help="Evaluation path: reference (PIL/scipy, exact), fast (GPU ops, tested tolerances), auto (fast on CUDA), "
                     "fast-nvjpeg (fast with JPEGs decoded on the GPU: pixels differ from PIL's; grids of none/blur/resize only).")
_Compile = typer.Option(False, "--compile", help="Fast path: score with torch.compile (worth it for large backbones on GPUs).")
_Boot = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for the 95% intervals (0: none).")
_Wait = typer.Option(False, "--wait", help="If another run is writing --out, wait until it ends (default: refuse at once).")
_Launcher = typer.Option("local", "--launcher", help="local: this process (or torchrun group); submitit: each training cell and each "
                         "checkpoint's evaluation a Slurm job; submitit-local: the same jobs as local processes (no Slurm).")
_Partition = typer.Option(None, "--slurm-partition", help="Slurm partition of the jobs (--launcher submitit).")
_Account = typer.Option(None, "--slurm-account", help="Slurm account charged for the jobs (--launcher submitit).")
_Gpus = typer.Option(0, "--gpus-per-job", help="GPUs each job asks for (pass --device cuda with 1).")
_Cpus = typer.Option(None, "--cpus-per-job", help="CPU cores each job asks for (data loading workers use them).")
_Mem = typer.Option(None, "--slurm-mem", help="Memory per job, in GB.")
_Time = typer.Option(240, "--slurm-time", help="Time limit per job, in minutes; a job stopped at its limit is requeued and resumes.")
_MaxJobs = typer.Option(None, "--max-jobs", help="Most training jobs running at once (the job array's parallelism).")


def parse_seeds(text: str) -> list[int]:
    """``--seeds 0,1,2`` as integers; a bad, empty or repeated item is refused by name."""
    items = [item.strip() for item in text.split(",")]
    seeds = []
    for item in items:
        try:
            seeds.append(int(item))
        except ValueError:
            raise ConfigError(f"--seeds {text!r}: item {item!r} is not an integer; give comma-separated integers, e.g. --seeds 0,1,2") from None
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise ConfigError(f"--seeds {text!r}: seed(s) {repeated} given twice; list each seed once, e.g. --seeds 0,1,2")
    return seeds


def _go(stages: tuple[bool, bool], protocol, detectors, data_root, train_data_root, out, seeds, overrides, device, dry_run,
        cells, workers, backbone, pretrained, recipes, protocols, n_boot, impl, compile_model, wait, launcher) -> None:
    from mirage_bench.data.facts_cache import FactsCache
    from mirage_bench.data.images import MAX_PIXELS
    from mirage_bench.engine.runner import Options, load_benchmark, preflight
    from mirage_bench.engine.store_lock import hold_store
    from mirage_bench.store import Store

    if cells and not dry_run:  # before the data is read
        raise ConfigError("--cells lists the plan's cells and runs nothing; pass it with --dry-run")
    if n_boot < 0:
        raise ConfigError(f"--bootstrap {n_boot} is negative; give the number of resamples (0: no intervals)")
    launcher.check()
    if not dry_run:
        launcher.check_scheduler()
    names = None if detectors is None else [d.strip() for d in detectors.split(",") if d.strip()]
    options = Options(out=out, device=device, workers=workers, impl=impl, compile=compile_model, wait=wait)
    store = Store(out, repair=not dry_run)
    with ExitStack() as held:
        def check(cards) -> None:
            """Before the data is read: every option and card, then the output folder's lock (a dry run writes
            nothing and takes none). A config error leaves no file behind."""
            preflight(cards, options, writes=not dry_run, device_here=launcher.kind != "submitit")  # Slurm jobs check their GPU
            if not dry_run:
                held.enter_context(hold_store(out, wait=wait, notify=_say))

        with FactsCache(store.facts_path(), MAX_PIXELS, writable=not dry_run) as facts:  # a dry run changes no file
            bench = load_benchmark(protocol, names, data_root, parse_seeds(seeds), as_list(overrides), backbone, pretrained,
                                   as_list(recipes), as_list(protocols), train_data_root=train_data_root, facts=facts, check=check)
        _work(stages, bench, store, options, dry_run, cells, n_boot, launcher)


def _say(line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _work(stages: tuple[bool, bool], bench, store, options, dry_run: bool, cells: bool, n_boot: int, launcher) -> None:
    """What ``_go`` does once the data is read: the plan (``--dry-run``), or the run and its table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from mirage_bench.engine import distributed
    from mirage_bench.engine.runner import describe_plan, evaluation_impl, execute, summarize_plan
    from mirage_bench.engine.tables import save_metrics
    from mirage_bench.reports.render import rich_table
    from mirage_bench.reports.report import build_report
    from mirage_bench.reports.runs import load_runs

    out = options.out
    main = distributed.is_main()  # under torchrun, one rank prints and writes the report
    for source in bench.sources if main else []:
        for line in source.lines():
            _say(line)
    if dry_run and launcher.kind != "local":
        from mirage_bench.cluster.launch import describe_jobs, plan_jobs

        for line in describe_jobs(plan_jobs(bench, store, evaluation_impl(bench, options, options.device), *stages), launcher):
            _say(line)
        return
    if dry_run:
        plan = describe_plan(bench, store, evaluation_impl(bench, options, options.device))
        title = f"Plan for {bench.protocol.name} v{bench.protocol.version} in {out}"
        _print_frame(plan if cells else summarize_plan(bench, plan), title)
        if not cells:
            models = int((plan["kind"] == "train").sum())
            console.print(f"{models} training cell(s), {models * len(bench.protocol.test) * len(bench.degradations)} "
                          "evaluation cell(s); --dry-run --cells lists each with its id", highlight=False)
        return
    if launcher.kind != "local":
        from mirage_bench.cluster.launch import execute_jobs

        record = execute_jobs(bench, options, launcher, train=stages[0], evaluate=stages[1], notify=_say)
    else:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console) as bar:
            def progress(description: str, total: int):
                task = bar.add_task(description, total=total)
                return lambda n: bar.advance(task, n)

            record = execute(bench, options, train=stages[0], evaluate=stages[1], progress=progress, checked=True)
    if not main:
        return
    if not stages[1]:
        console.print(f"trained {sum(c['trained_in_this_run'] for c in record['train_cells'])} cells; run record: {store.run_dir(record['run_id'])}")
        return
    report = build_report(load_runs(out, [record["run_id"]]), n_boot=n_boot, with_figures=False)  # metrics computed once
    save_metrics(store, record["run_id"], report.long)
    for table in report.tables:
        console.print(rich_table(table))
    console.print(f"run {record['run_id']}: per-image predictions in {store.root / 'predictions'}, "
                  f"metrics with 95% intervals in {store.run_dir(record['run_id']) / 'metrics.csv'}")


def _print_frame(frame, title: str) -> None:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(str(column), overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*map(str, row))
    console.print(table)


def _command(stages: tuple[bool, bool], doc: str):
    def command(
        protocol: str = _Protocol, detectors: Optional[str] = _Detectors, data_root: Optional[Path] = _DataRoot,
        train_data_root: Optional[Path] = _TrainDataRoot, out: Path = _Out, seeds: str = _Seeds,
        overrides: Optional[List[str]] = Overrides, device: str = _Device, dry_run: bool = _DryRun, cells: bool = _Cells,
        workers: Optional[int] = _Workers, backbone: Optional[str] = _Backbone, pretrained: Optional[str] = _Pretrained,
        recipes: Optional[List[Path]] = RecipeDirs, protocols: Optional[List[Path]] = ProtocolDirs, n_boot: int = _Boot,
        impl: str = _Impl, compile_model: bool = _Compile, wait: bool = _Wait, launcher: str = _Launcher,
        slurm_partition: Optional[str] = _Partition, slurm_account: Optional[str] = _Account, gpus_per_job: int = _Gpus,
        cpus_per_job: Optional[int] = _Cpus, slurm_mem: Optional[float] = _Mem, slurm_time: int = _Time, max_jobs: Optional[int] = _MaxJobs,
    ) -> None:
        from mirage_bench.cluster.launch import Launcher

        jobs = Launcher(launcher, slurm_partition, slurm_account, gpus_per_job, cpus_per_job, slurm_mem, slurm_time, max_jobs)
        _go(stages, protocol, detectors, data_root, train_data_root, out, seeds, overrides, device, dry_run, cells, workers, backbone,
            pretrained, recipes, protocols, n_boot, impl, compile_model, wait, jobs)

    command.__doc__ = doc
    return command


train = _command((True, False), "Train every missing checkpoint of the protocol x detectors x seeds matrix.")
evaluate = _command((False, True), "Score every missing evaluation cell with existing checkpoints, then print the table.")
run = _command((True, True), "Train what is missing, evaluate everything, print the results table (default: the mini protocol).")
