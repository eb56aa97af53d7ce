"""The benchmark matrix as scheduler jobs (``mirage-bench run --launcher submitit``): one job per training cell
(a job array), one evaluation job per checkpoint, submitted through submitit.

The driver plans once (the cells missing from the store), writes the plan for the jobs (``runs/<run_id>/plan.pkl``)
and submits: the training cells as one array, each evaluation job with a Slurm dependency ``afterok`` on the
training job of its checkpoint (killed if that job fails); submitit's local executor has no dependencies, so
there the driver submits an evaluation once its training job has finished. It then waits, printing a line
whenever the jobs' counts change (queued, running, done, failed), and writes the run record when all are done:
the same record as a one-process run, plus each job (id, state, log) and where each cell was computed.

The driver holds the store's run lock (``<out>/.run.lock``) from its start to its record, as a one-process run
does: a second driver on the store refuses (or waits, ``--wait``). The jobs do not take it (they run in other
processes, on other hosts); each claims its cell's lock instead (:mod:`mirage_bench.cluster.cell_lock`). A
driver that finds a cell lock held (jobs of a stopped driver still running) refuses before it tidies the store.

A failed job is listed with its error and its log, in ``runs/<run_id>/failed.json`` and in the error the driver
exits with; no record is written. Run the same command again: finished cells are found in the store, so only
the failed ones are submitted, and a training cell resumes from its ``state.pt``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from mirage_bench.cluster.cell_lock import held_cells
from mirage_bench.cluster.jobs import PLAN, EvalJob, JobSpec, TrainJob, save_plan
from mirage_bench.cluster.launcher import Launcher
from mirage_bench.engine.benchmark import Benchmark
from mirage_bench.engine.record import RunRecord
from mirage_bench.engine.runner import (
    Options, TrainCell, check_plan, checkpoint_hash, data_hashes, eval_entries, eval_jobs, evaluation_impl, no_checkpoint,
    run_record, train_cells, train_entry,
)
from mirage_bench.engine.store_lock import StoreInUse, hold_store
from mirage_bench.errors import MirageBenchError
from mirage_bench.store import Store, say, write_json
from mirage_bench.zoo.load import is_published_recipe

FAILED = "failed.json"


class JobsFailed(MirageBenchError):
    """Some jobs of a run failed; the message lists their cells, errors and logs."""


@dataclass
class Plan:
    """What a run submits: the training cells to train, and the cells whose checkpoint needs scoring."""

    cells: list[TrainCell]
    to_train: list[TrainCell]
    to_evaluate: list[TrainCell]


def plan_jobs(bench: Benchmark, store: Store, impl: str, train: bool = True, evaluate: bool = True) -> Plan:
    """The jobs the store still needs: a training job per missing checkpoint, an evaluation job per checkpoint with
    a missing evaluation cell (every checkpoint still to train). ``train=False``: a missing checkpoint is refused."""
    check_plan(bench)
    hashes = data_hashes(bench)
    cells = train_cells(bench, hashes)
    to_train, to_evaluate = [], []
    for cell in cells:
        ckpt = checkpoint_hash(store, cell)
        if ckpt is None:
            if not train and not is_published_recipe(cell.recipe):
                raise no_checkpoint(store, cell)
            to_train.append(cell)
        if evaluate and (ckpt is None or not all(store.has_predictions(c) for job in eval_jobs(bench, cell, ckpt, hashes["test"], impl)
                                                 for c in job.cell_ids.values())):
            to_evaluate.append(cell)
    return Plan(cells, to_train, to_evaluate)


def describe_jobs(plan: Plan, launcher: Launcher) -> list[str]:
    """What a run would submit (``--dry-run``): the job count, the array, the dependencies and the resources."""
    trained = {cell.cell_id for cell in plan.to_train}
    after = sum(cell.cell_id in trained for cell in plan.to_evaluate)
    at_once = f", at most {launcher.max_jobs} at once" if launcher.max_jobs else ""
    how = "Slurm dependency afterok on it, cancelled if it fails" if launcher.kind == "submitit" else \
        "submitted by the driver when it has finished: the local executor has no dependencies"
    lines = [f"{len(plan.to_train) + len(plan.to_evaluate)} job(s) to submit ({launcher.kind}); "
             f"{len(plan.cells) - len(plan.to_train)} of {len(plan.cells)} training cells are done",
             f"  training: one array of {len(plan.to_train)} job(s){at_once}" if plan.to_train else "  training: no job",
             f"  evaluation: {len(plan.to_evaluate)} job(s), one per checkpoint; {after} after their training job ({how}), "
             f"{len(plan.to_evaluate) - after} start at once"]
    resources = ", ".join(f"{key}={value}" for key, value in launcher.parameters().items())
    lines.append(f"  each job: {resources}")
    if launcher.gpus_per_job > 1:
        lines.append(f"  each job runs {launcher.gpus_per_job} tasks, one GPU each, as one torchrun group (rank 0 writes)")
    for cell in plan.to_train:
        lines.append(f"  train {cell.cell_id}: {cell.recipe.name} on {cell.train_generators} (seed {cell.seed}), {cell.work()}")
    for cell in plan.to_evaluate:
        lines.append(f"  eval  {cell.cell_id}: {cell.recipe.name} on {cell.train_generators} (seed {cell.seed})"
                     + (" after its training job" if cell.cell_id in trained else ""))
    return lines


def _executor(launcher: Launcher, folder: Path) -> Any:
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster="slurm" if launcher.kind == "submitit" else "local")
    executor.update_parameters(**launcher.parameters())
    return executor


@dataclass
class _Tracked:
    """One submitted (or, with the local executor, still waiting) job."""

    kind: str  # train or eval
    cell: TrainCell
    job: Any = None  # the submitit job; None while an evaluation waits for its training job
    after: "_Tracked | None" = None
    state: str = "queued"  # queued, running, done, failed
    result: Any = None
    error: str | None = None


def _poll(tracked: _Tracked) -> None:
    """Update a job's state; a finished job's result or error is read once."""
    if tracked.state in ("done", "failed") or tracked.job is None:
        return
    if not tracked.job.done():
        tracked.state = "running" if tracked.job.state.upper() in ("RUNNING", "COMPLETING") else "queued"
        return
    exc = tracked.job.exception()
    if exc is None:  # a job of several tasks (a torchrun group) returns each task's result: rank 0's is the job's
        tracked.state, tracked.result = "done", tracked.job.results()[0]
    else:
        tracked.state, tracked.error = "failed", _error_line(exc)


def _error_line(exc: BaseException) -> str:
    """A failed job's error in one line: a job that raised, its exception's line (the last of the traceback that
    submitit puts between two dashed lines; the whole is in its log); a job that stopped without a result (killed,
    out of memory, cancelled), submitit's first two lines (its state)."""
    from submitit.core.utils import FailedJobError

    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    if not isinstance(exc, FailedJobError):  # the other UncompletedJobErrors: no result
        return " ".join(lines[:2])
    rules = [i for i, line in enumerate(lines) if set(line) == {"-"}]
    return lines[rules[1] - 1] if len(rules) > 1 else lines[-1]


def _counts(jobs: Sequence[_Tracked]) -> str:
    states = ("queued", "running", "done", "failed")
    return ", ".join(f"{sum(j.state == s for j in jobs)} {s}" for s in states) + f" (of {len(jobs)} jobs)"


def execute_jobs(bench: Benchmark, options: Options, launcher: Launcher, *, train: bool = True, evaluate: bool = True,
                 notify: Callable[[str], None] = say) -> RunRecord:
    """Run the plan as scheduler jobs and return the run record (written once every job is done). Failed jobs:
    :class:`JobsFailed` naming their cells, errors and logs (also in ``runs/<run_id>/failed.json``)."""
    launcher.check()
    launcher.check_device(options.device)
    launcher.check_scheduler()
    check_plan(bench)
    options = replace(options, out=Path(options.out).absolute())  # the jobs' working folder may differ
    with hold_store(options.out, wait=options.wait, notify=notify):
        store = Store(options.out)
        held = held_cells(options.out)
        if held:  # before clean_leftovers, which would take a running job's temporary files for a killed run's
            raise StoreInUse(f"jobs of an earlier run still compute cells in {options.out}: "
                             + "; ".join(f"{name} ({holder})" for name, holder in held.items())
                             + ". Wait for them to end (or cancel them, e.g. scancel JOBID), then run again")
        store.clean_leftovers()
        impl = evaluation_impl(bench, options, options.device)
        plan = plan_jobs(bench, store, impl, train, evaluate)
        run_id = store.new_run_id()
        spec = JobSpec(store.run_dir(run_id) / PLAN, options, run_id)
        save_plan(bench, spec.plan)
        submitted = _Submitted(_executor(launcher, store.run_dir(run_id) / "jobs"), spec, launcher.kind == "submitit")
        submitted.submit(plan, notify)
        submitted.wait(launcher.poll_s, notify)
        failed = [j for j in submitted.jobs if j.state == "failed"]
        if failed:
            _fail(store, run_id, failed)
        return _record(bench, options, store, run_id, impl, plan, submitted.jobs, launcher.kind, evaluate)


class _Submitted:
    """A run's jobs: submitted, polled, and (local executor) evaluations submitted when their training is done."""

    def __init__(self, executor: Any, spec: JobSpec, slurm: bool) -> None:
        self.executor, self.spec, self.slurm = executor, spec, slurm
        self.jobs: list[_Tracked] = []

    def submit(self, plan: Plan, notify: Callable[[str], None]) -> None:
        training = {cell.cell_id: _Tracked("train", cell) for cell in plan.to_train}
        if training:
            self.executor.update_parameters(name="mirage-bench-train")
            for tracked, job in zip(training.values(), self.executor.map_array(TrainJob(self.spec), list(training))):
                tracked.job = job
        evaluating = [_Tracked("eval", cell, after=training.get(cell.cell_id)) for cell in plan.to_evaluate]
        self.executor.update_parameters(name="mirage-bench-eval")
        for tracked in evaluating:
            if tracked.after is None or self.slurm:
                self._submit_eval(tracked)
        self.jobs = [*training.values(), *evaluating]
        notify(f"submitted {len(training)} training job(s) and {len(evaluating)} evaluation job(s); "
               f"logs in {self.executor.folder}")

    def _submit_eval(self, tracked: _Tracked) -> None:
        extra = {}
        if tracked.after is not None and self.slurm:  # Slurm starts it once its checkpoint exists, or cancels it
            extra = {"dependency": f"afterok:{tracked.after.job.job_id}", "kill-on-invalid-dep": "yes"}
        self.executor.update_parameters(slurm_additional_parameters=extra)
        tracked.job = self.executor.submit(EvalJob(self.spec), tracked.cell.cell_id)

    def wait(self, poll_s: float, notify: Callable[[str], None]) -> None:
        """Poll until every job is done or failed, printing the counts when they change."""
        shown = None
        while True:
            for tracked in self.jobs:
                _poll(tracked)
                if tracked.job is None and tracked.after is not None and tracked.after.state in ("done", "failed"):
                    if tracked.after.state == "done":
                        self._submit_eval(tracked)
                    else:
                        tracked.state, tracked.error = "failed", "not run: its training job failed"
            line = _counts(self.jobs)
            if line != shown:
                notify(f"jobs: {line}")
                shown = line
            if all(j.state in ("done", "failed") for j in self.jobs):
                return
            time.sleep(poll_s)


def _describe_cell(cell: TrainCell) -> str:
    return f"{cell.recipe.name} on {cell.train_generators} (seed {cell.seed}, cell {cell.cell_id})"


def _job_entry(tracked: _Tracked) -> dict[str, Any]:
    job = tracked.job
    return {"kind": tracked.kind, "cell_id": tracked.cell.cell_id, "job_id": None if job is None else str(job.job_id),
            "state": tracked.state, "error": tracked.error, "log": None if job is None else str(job.paths.stderr)}


def _fail(store: Store, run_id: str, failed: list[_Tracked]) -> None:
    """Write ``failed.json`` (each failed job's cell, error and log) and raise the one error listing them."""
    write_json(store.run_dir(run_id) / FAILED, {"run_id": run_id, "failed": [_job_entry(j) for j in failed]})
    lines = [f"  {j.kind} {_describe_cell(j.cell)}: {j.error}" + (f"\n    log: {j.job.paths.stderr}" if j.job is not None else "")
             for j in failed]
    raise JobsFailed(f"{len(failed)} job(s) of run {run_id} failed:\n" + "\n".join(lines)
                     + f"\nRun the same command again: it submits only the unfinished cells (listed in {store.run_dir(run_id) / FAILED})")


def _record(bench: Benchmark, options: Options, store: Store, run_id: str, impl: str, plan: Plan, jobs: list[_Tracked],
            kind: str, evaluate: bool) -> RunRecord:
    """The run record of a finished run, as a one-process run writes it, plus its jobs and their environments."""
    hashes = data_hashes(bench)
    record = run_record(bench, options, run_id, options.device, 1, impl, hashes)
    results = {(j.kind, j.cell.cell_id): j.result for j in jobs}
    environments: list[dict[str, Any]] = []  # where this run's cells were computed, each once

    def where(result: dict[str, Any]) -> int:
        if result["environment"] not in environments:
            environments.append(result["environment"])
        return environments.index(result["environment"])

    for cell in plan.cells:
        trained = results.get(("train", cell.cell_id))
        ckpt = checkpoint_hash(store, cell)
        record["train_cells"].append(train_entry(store, cell, ckpt, bool(trained and trained["computed"])))
        if trained and trained["computed"]:  # a job that found its cell done (by another job) computed nothing
            record["train_cells"][-1]["environment"] = where(trained)
        if evaluate:
            scored = results.get(("eval", cell.cell_id))
            seconds = scored["seconds"] if scored else {}
            entries = eval_entries(eval_jobs(bench, cell, ckpt, hashes["test"], impl), seconds)
            for entry in entries:
                if entry["computed_in_this_run"]:
                    entry["environment"] = where(scored)
            record["eval_cells"] += entries
    if environments:  # the leaderboard's hardware column: every device the run's cells were computed on
        record["device"] = "; ".join(sorted({env["device"] for env in environments}))
    record.update(launcher=kind, jobs=[_job_entry(j) for j in jobs], environments=environments)
    typed = RunRecord.model_validate(record)
    write_json(store.run_dir(run_id) / "record.json", typed.json_dict())
    return typed
