"""What one cluster job runs: one training cell, or the evaluation of one checkpoint, as a plain library call.

A job carries only a :class:`JobSpec` (the plan's path in the shared store, the run's options and id) and a
cell id; submitit pickles that. The job loads the benchmark the driver planned (``plan.pkl``: cards and
manifests, no image) instead of scanning the data again, so every job works on the driver's plan exactly.

A job never takes the store's run lock (``<out>/.run.lock``): its driver holds that for the whole run, in
another process, often on another host. What a job writes it writes under its cell's lock
(:mod:`mirage_bench.cluster.cell_lock`), after looking again whether the cell is done, and through the store's
atomic, never-overwriting writes. A job stopped by the scheduler (timeout, preemption) is requeued by submitit
(the callables are ``Checkpointable``: the same call is submitted again) and training resumes from the
cell's ``state.pt``.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from submitit.helpers import Checkpointable

from mirage_bench.cluster.cell_lock import claim_cell
from mirage_bench.engine import distributed
from mirage_bench.engine.benchmark import Benchmark
from mirage_bench.engine.record import base_record
from mirage_bench.engine.runner import (
    Options, TrainCell, checkpoint_hash, data_hashes, eval_jobs, evaluate_into_store, evaluation_impl, train_cells,
    train_into_store,
)
from mirage_bench.errors import DataError
from mirage_bench.progress import no_progress
from mirage_bench.store import Store, atomic_write, replace_text

PLAN = "plan.pkl"
ENVIRONMENTS = "environments"


@dataclass(frozen=True)
class JobSpec:
    """What every job of a run is given: small, so that submitit's pickles stay small."""

    plan: Path  # the pickled Benchmark in the run's folder, on the shared filesystem
    options: Options
    run_id: str


def save_plan(bench: Benchmark, path: Path) -> None:
    """Write the planned benchmark for the jobs (atomically, never over another run's plan)."""
    atomic_write(path, lambda tmp: tmp.write_bytes(pickle.dumps(bench, protocol=pickle.HIGHEST_PROTOCOL)))


def job_id() -> str | None:
    """This job's id (Slurm's, or the local executor's)."""
    return os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID")


def environment(device: str) -> dict[str, Any]:
    """Where a job ran: host, device (GPU name), CUDA driver, package versions and CPU kernels (jobs on the same
    machine and software share it in the run record)."""
    import torch

    base = base_record("-", device, 1)
    driver = None
    if str(device).startswith("cuda") and torch.cuda.is_available():
        driver = torch._C._cuda_getDriverVersion()  # e.g. 12040: the driver's CUDA API version
    return {"host": socket.gethostname(), "device": base["device"], "cuda_driver": driver, "cuda_runtime": torch.version.cuda, "versions": base["versions"],
            "cpu_kernels": base["cpu_kernels"], "git": base["git"]}


class _Job(Checkpointable):
    """A job of the run ``spec``; called with a cell id. Requeued as the same call when the scheduler stops it."""

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec

    def _setup(self) -> tuple[Benchmark, Store, Options, str]:
        bench = pickle.loads(Path(self.spec.plan).read_bytes())
        device = distributed.init_from_env(self.spec.options.device)
        options = self.spec.options
        return bench, Store(options.out), replace(options, workers=options.resolved_workers(device)), device

    def _cell(self, bench: Benchmark, cell_id: str) -> TrainCell:
        found = [cell for cell in train_cells(bench, data_hashes(bench)) if cell.cell_id == cell_id]
        if not found:
            raise DataError(f"training cell {cell_id} is not in the plan {self.spec.plan}; the plan changed since it was submitted")
        return found[0]


class TrainJob(_Job):
    """Train one cell unless it is done; returns whether this job trained it, its seconds and its environment."""

    def __call__(self, cell_id: str) -> dict[str, Any]:
        bench, store, options, device = self._setup()
        cell = self._cell(bench, cell_id)
        started = time.perf_counter()
        with claim_cell(options.out, f"train-{cell_id}", job_id()):
            trained = not store.has_checkpoint(cell_id)
            if trained:
                train_into_store(cell, store, options, device, no_progress)
        env = environment(device)
        if trained:
            _record_environment(store, [cell_id], env)
        return {"cell_id": cell_id, "computed": trained, "seconds": time.perf_counter() - started, "environment": env}


class EvalJob(_Job):
    """Score one trained cell's checkpoint on every test subset and degradation not done yet; returns the
    seconds of each evaluation cell it computed and its environment."""

    def __call__(self, cell_id: str) -> dict[str, Any]:
        bench, store, options, device = self._setup()
        cell = self._cell(bench, cell_id)
        impl = evaluation_impl(bench, options, device)
        ckpt = checkpoint_hash(store, cell)
        if ckpt is None:
            raise DataError(f"training cell {cell_id} has no checkpoint in {store.checkpoint_dir(cell_id)}; its training job "
                            "did not finish (see its log)")
        jobs = eval_jobs(bench, cell, ckpt, data_hashes(bench)["test"], impl)
        with claim_cell(options.out, f"eval-{cell_id}-{impl}", job_id()):
            seconds = evaluate_into_store(jobs, bench, store, options, device, self.spec.run_id, no_progress, impl)
        env = environment(device)
        _record_environment(store, list(seconds), env)
        return {"cell_id": cell_id, "seconds": seconds, "environment": env}


def _record_environment(store: Store, cell_ids: list[str], env: dict[str, Any]) -> None:
    """``environments/<cell>.json``: where and by which job the cell was last computed (replaced when a damaged cell
    is recomputed)."""
    text = json.dumps({**env, "job": job_id()}, indent=2, sort_keys=True) + "\n"
    for cell_id in cell_ids:
        replace_text(store.root / ENVIRONMENTS / f"{cell_id}.json", text)
