"""``mirage-bench train``, ``eval`` and ``run``: the benchmark matrix, resumable, from the prediction store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, List, Optional

import typer

from mirage_bench.cli.console import console, say
from mirage_bench.cli.options import Overrides, ProtocolDirs, RecipeDirs, Wide
from mirage_bench.errors import ConfigError

if TYPE_CHECKING:
    from mirage_bench.runconfig import RunConfig

_Protocol = typer.Option("mini", "--protocol", help="Protocol card name or YAML path.")
_TrainOn = typer.Option(None, "--train", help="Your own data: build the protocol from --data-root, training on these generators "
                        "(comma-separated folder names; layout detected, splits read or carved by a seeded rule).")
_TestOn = typer.Option(None, "--test", help="With --train: the generators to test on (default: every generator not trained on).")
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
_Gpus = typer.Option(0, "--gpus-per-job", help="GPUs each job asks for, with --device cuda; N > 1 runs N tasks per job as one torchrun group.")
_Cpus = typer.Option(None, "--cpus-per-job", help="CPU cores each job asks for (data loading workers use them).")
_Mem = typer.Option(None, "--slurm-mem", help="Memory per job, in GB.")
_Time = typer.Option(240, "--slurm-time", help="Time limit per job, in minutes; a job stopped at its limit is requeued and resumes.")
_MaxJobs = typer.Option(None, "--max-jobs", help="Most training jobs running at once (the job array's parallelism).")


_Config = typer.Option(None, "--config", help="A YAML file of run settings (RunConfig's fields, e.g. protocol: mini, seeds: [0, 1]); "
                       "flags given on the command line override it.")

#: Each flag's place in RunConfig: a field name, or (section, field) for the launcher's settings.
FLAG_FIELDS: dict[str, str | tuple[str, str]] = {
    "protocol": "protocol", "train_on": "train_generators", "test_on": "test_generators", "detectors": "detectors",
    "data_root": "data_root", "train_data_root": "train_data_root", "out": "out", "seeds": "seeds", "overrides": "overrides",
    "device": "device", "workers": "workers", "backbone": "backbone", "pretrained": "pretrained", "recipes": "recipe_dirs",
    "protocols": "protocol_dirs", "n_boot": "bootstrap", "impl": "impl", "compile_model": "compile", "wait": "wait",
    "launcher": ("launcher", "kind"), "slurm_partition": ("launcher", "partition"), "slurm_account": ("launcher", "account"),
    "gpus_per_job": ("launcher", "gpus_per_job"), "cpus_per_job": ("launcher", "cpus_per_job"), "slurm_mem": ("launcher", "mem_gb"),
    "slurm_time": ("launcher", "time_min"), "max_jobs": ("launcher", "max_jobs"),
}


def config_from_flags(ctx: typer.Context, config_file: Optional[Path], stages: tuple[bool, bool]) -> "RunConfig":
    """RunConfig from the defaults, then ``--config``'s file, then the flags the user typed (a flag left at its default
    does not override the file). The command fixes the stages (``train``, ``eval`` or both)."""
    from mirage_bench.runconfig import RunConfig

    flags: dict = {"train": stages[0], "evaluate": stages[1]}
    for flag, field in FLAG_FIELDS.items():
        source = ctx.get_parameter_source(flag)
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):  # by name: Typer may carry its own copy of click
            continue
        value = ctx.params[flag]
        value = list(value) if isinstance(value, (list, tuple)) else value
        if isinstance(field, tuple):
            flags.setdefault(field[0], {})[field[1]] = value
        else:
            flags[field] = value
    return RunConfig.from_sources(config_file, flags)


def _go(config: "RunConfig", dry_run: bool, cells: bool, wide: bool) -> None:
    """Run (or with ``dry_run`` plan) ``config`` through the library and print what comes back."""
    import mirage_bench.api as api
    from mirage_bench import distributed
    from mirage_bench.progress import progress_bars
    from mirage_bench.reports.render import print_table

    if cells and not dry_run:  # before the data is read
        raise ConfigError("--cells lists the plan's cells and runs nothing; pass it with --dry-run")
    if dry_run:
        _print_plan(api.plan(config, notify=say), config, cells)
        return
    with progress_bars(console) as progress:
        record = api.run(config, progress=progress, notify=say)
    if not distributed.is_main():  # under torchrun, one rank prints
        return
    run_dir = config.out / "runs" / record.run_id
    if not config.evaluate:
        trained = sum(c.trained_in_this_run for c in record.train_cells)
        console.print(f"trained {trained} cells; run record: {run_dir}")
        return
    for table in record.report.tables:
        print_table(console, table, wide, f"{run_dir / 'metrics.csv'}")
    if record.computed_nothing():
        say(f"run {record.run_id} computed nothing: every checkpoint and evaluation cell was already in {config.out}; "
            "the tables above are computed from the stored predictions")
    console.print(f"run {record.run_id}: per-image predictions in {config.out / 'predictions'}, "
                  f"metrics with 95% intervals in {run_dir / 'metrics.csv'}")


def _print_plan(plan, config: "RunConfig", cells: bool) -> None:
    """The plan's scheduler jobs, or its cells (``--cells``) or models as a table (the data lines came through notify)."""
    from mirage_bench.reports.frames import frame_rich

    if plan.jobs:
        for line in plan.jobs:
            say(line)
        return
    bench = plan.benchmark
    title = f"Plan for {bench.protocol.name} v{bench.protocol.version} in {config.out}"
    console.print(frame_rich(plan.cells if cells else plan.models, title))
    if not cells:
        models, evaluations = plan.cell_counts()
        console.print(f"{models} training cell(s), {evaluations} evaluation cell(s); --dry-run --cells lists each with its id",
                      highlight=False)


def _command(stages: tuple[bool, bool], doc: str):
    def command(
        ctx: typer.Context, config_file: Optional[Path] = _Config,
        protocol: str = _Protocol, train_on: Optional[str] = _TrainOn, test_on: Optional[str] = _TestOn, detectors: Optional[str] = _Detectors, data_root: Optional[Path] = _DataRoot,
        train_data_root: Optional[Path] = _TrainDataRoot, out: Path = _Out, seeds: str = _Seeds,
        overrides: Optional[List[str]] = Overrides, device: str = _Device, dry_run: bool = _DryRun, cells: bool = _Cells,
        workers: Optional[int] = _Workers, backbone: Optional[str] = _Backbone, pretrained: Optional[str] = _Pretrained,
        recipes: Optional[List[Path]] = RecipeDirs, protocols: Optional[List[Path]] = ProtocolDirs, n_boot: int = _Boot,
        impl: str = _Impl, compile_model: bool = _Compile, wait: bool = _Wait, launcher: str = _Launcher,
        slurm_partition: Optional[str] = _Partition, slurm_account: Optional[str] = _Account, gpus_per_job: int = _Gpus,
        cpus_per_job: Optional[int] = _Cpus, slurm_mem: Optional[float] = _Mem, slurm_time: int = _Time, max_jobs: Optional[int] = _MaxJobs,
        wide: bool = Wide,
    ) -> None:
        _go(config_from_flags(ctx, config_file, stages), dry_run, cells, wide)

    command.__doc__ = doc
    return command


train = _command((True, False), "Train every missing checkpoint of the protocol x detectors x seeds matrix.")
evaluate = _command((False, True), "Score every missing evaluation cell with existing checkpoints, then print the table.")
run = _command((True, True), "Train what is missing, evaluate everything, print the results table (default: the mini protocol).")
