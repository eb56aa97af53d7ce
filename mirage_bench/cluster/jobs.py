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

A job of several tasks (``--gpus-per-job N``: N tasks, one GPU each) is a torchrun group: each task exports the
variables torchrun would set (:func:`join_tasks`) and runs the same engine code as a torchrun rank; the data are
sharded over the ranks, and rank 0 alone takes the cell's lock and writes. The other ranks wait for rank 0 in
their first collective, so a cell held by another job makes them wait at most torch's process-group timeout
(10 minutes under NCCL, 30 under gloo): then the job fails and a rerun finds the cell done.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import time
from contextlib import nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ContextManager

from submitit import JobEnvironment
from submitit.helpers import Checkpointable, TorchDistributedEnvironment

from mirage_bench import distributed
from mirage_bench.cluster.cell_lock import claim_cell
from mirage_bench.engine.benchmark import Benchmark
from mirage_bench.engine.record import base_record
from mirage_bench.engine.runner import (
    Options, TrainCell, checkpoint_hash, data_hashes, eval_jobs, evaluate_into_store, evaluation_impl, train_cells,
    train_into_store,
)
from mirage_bench.errors import ConfigError, DataError
from mirage_bench.progress import no_progress
from mirage_bench.store import Store, atomic_write, replace_text

PLAN = "plan.pkl"
ENVIRONMENTS = "environments"
#: What torchrun sets and ``distributed`` reads; a task of a job takes them from its scheduler.
TORCHRUN_VARIABLES = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE")


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


def join_tasks(device: str) -> None:
    """A job of several tasks becomes a torchrun group: each task exports ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT`` from its scheduler's variables (submitit's
    ``TorchDistributedEnvironment``; the port is drawn from the job id, the same in every task), which
    ``distributed.init_from_env`` then reads as under torchrun. Copies inherited from the shell that
    submitted the job are dropped first (a fixed ``MASTER_PORT`` would be shared by every job on a node).
    ``CUDA_VISIBLE_DEVICES`` is left as the scheduler set it: each rank takes the GPU of its local rank among the
    node's GPUs, as under torchrun (submitit's own narrowing to the local rank's index would leave rank 1 no GPU 1).
    A one-task job is left as it is."""
    if JobEnvironment().num_tasks == 1:
        return
    for name in TORCHRUN_VARIABLES:
        os.environ.pop(name, None)
    tasks = TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
    if str(device).startswith("cuda"):
        import torch

        seen = torch.cuda.device_count()
        if seen < tasks.local_world_size:
            raise ConfigError(f"task {tasks.rank} of this job sees {seen} GPU(s) (CUDA_VISIBLE_DEVICES="
                              f"{os.environ.get('CUDA_VISIBLE_DEVICES', '')!r}) for the {tasks.local_world_size} tasks on its node: "
                              "each task takes the GPU of its local rank among the node's GPUs, as under torchrun, so every task must "
                              "see them all (a cluster that binds one GPU to each task does not allow it); run one GPU per job "
                              "(--gpus-per-job 1)")


def environment(device: str) -> dict[str, Any]:
    """Where a job ran: host, device (GPU name; with its rank count in a job of several tasks), CUDA driver, package
    versions and CPU kernels (jobs on the same machine and software share it in the run record)."""
    import torch

    world = distributed.rank_and_world()[1]
    base = base_record("-", device, world)
    driver = None
    if str(device).startswith("cuda") and torch.cuda.is_available():
        driver = torch._C._cuda_getDriverVersion()  # e.g. 12040: the driver's CUDA API version
    shown = base["device"] if world == 1 else f"{world} x {base['device']}"
    return {"host": socket.gethostname(), "device": shown, "cuda_driver": driver, "cuda_runtime": torch.version.cuda, "versions": base["versions"],
            "cpu_kernels": base["cpu_kernels"], "git": base["git"]}


def _claimed(out: Path, name: str) -> ContextManager[None]:
    """The cell's lock, taken by rank 0 of the job's tasks (the others follow rank 0 through their collectives)."""
    return claim_cell(out, name, job_id()) if distributed.is_main() else nullcontext()


class _Job(Checkpointable):
    """A job of the run ``spec``; called with a cell id. Requeued as the same call when the scheduler stops it."""

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec

    def _setup(self) -> tuple[Benchmark, Store, Options, str]:
        bench = pickle.loads(Path(self.spec.plan).read_bytes())
        join_tasks(self.spec.options.device)
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
        with _claimed(options.out, f"train-{cell_id}"):
            trained = distributed.broadcast_object(not store.has_checkpoint(cell_id) if distributed.is_main() else None)
            if trained:
                train_into_store(cell, store, options, device, no_progress)
        env = environment(device)
        if trained and distributed.is_main():
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
        with _claimed(options.out, f"eval-{cell_id}-{impl}"):
            distributed.barrier()  # every rank looks for the missing cells once rank 0 holds the lock
            seconds = evaluate_into_store(jobs, bench, store, options, device, self.spec.run_id, no_progress, impl)
        env = environment(device)
        if distributed.is_main():
            _record_environment(store, list(seconds), env)
        return {"cell_id": cell_id, "seconds": seconds, "environment": env}


def _record_environment(store: Store, cell_ids: list[str], env: dict[str, Any]) -> None:
    """``environments/<cell>.json``: where and by which job the cell was last computed (replaced when a damaged cell
    is recomputed)."""
    text = json.dumps({**env, "job": job_id()}, indent=2, sort_keys=True) + "\n"
    for cell_id in cell_ids:
        replace_text(store.root / ENVIRONMENTS / f"{cell_id}.json", text)
