"""Where a run's jobs run and what each asks the scheduler for: part of a run's configuration, so it is light
(no submitit, no torch) and checked before any work."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Any

from mirage_bench.errors import ConfigError

#: ``local``: one process (or one torchrun group), today's path. ``submitit``: Slurm. ``submitit-local``: the same
#: jobs as processes on this machine through submitit's local executor (no Slurm; what the tests use).
LAUNCHERS = ("local", "submitit", "submitit-local")


@dataclass(frozen=True)
class Launcher:
    """Where the jobs run and what each asks the scheduler for (submitit's ``AutoExecutor.update_parameters``)."""

    kind: str = "local"
    partition: str | None = None  # slurm_partition
    account: str | None = None  # slurm_account
    gpus_per_job: int = 0  # gpus_per_node; more than 1: as many tasks (tasks_per_node), one GPU each, a torchrun group
    cpus_per_job: int | None = None  # cpus_per_task
    mem_gb: float | None = None  # mem_gb
    time_min: int = 240  # timeout_min: a job stopped at its limit is requeued and resumes
    max_jobs: int | None = None  # slurm_array_parallelism: training jobs running at once
    poll_s: float = 5.0  # how often the driver looks at its jobs

    def check(self) -> None:
        """Refuse an unknown launcher, a non-positive amount, and Slurm options with a launcher that has no Slurm."""
        if self.kind not in LAUNCHERS:
            raise ConfigError(f"--launcher {self.kind!r} is not one of {', '.join(LAUNCHERS)}")
        for name, value in (("--gpus-per-job", self.gpus_per_job), ("--cpus-per-job", self.cpus_per_job), ("--slurm-mem", self.mem_gb),
                            ("--slurm-time", self.time_min), ("--max-jobs", self.max_jobs)):
            if value is not None and (value < 0 or (value == 0 and name != "--gpus-per-job")):
                raise ConfigError(f"{name} {value} must be positive")
        if self.kind == "local" and self != Launcher(poll_s=self.poll_s):
            raise ConfigError("--slurm-*, --gpus-per-job, --cpus-per-job and --max-jobs describe scheduler jobs; "
                              "pass --launcher submitit (or submitit-local) with them")
        if self.kind != "local" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise ConfigError(f"--launcher {self.kind} runs its driver as one process, not under torchrun; start it with "
                              "mirage-bench run directly")
        if self.kind == "submitit-local" and (self.partition or self.account):
            raise ConfigError("--slurm-partition and --slurm-account need Slurm; pass --launcher submitit with them")
        if self.cpus_per_job is not None and self.cpus_per_job % max(1, self.gpus_per_job):
            raise ConfigError(f"--cpus-per-job {self.cpus_per_job} is shared by the job's {self.gpus_per_job} tasks (one per GPU): "
                              f"give a multiple of {self.gpus_per_job}")

    def check_device(self, device: str) -> None:
        """Refuse a device the jobs cannot use: CUDA in jobs given no GPU, and several GPUs per job (a torchrun
        group of one task per GPU, each on its local rank's GPU) with the CPU or with one named GPU."""
        if self.kind == "local":
            return
        on_cuda = str(device).startswith("cuda")
        if on_cuda and self.gpus_per_job == 0:
            raise ConfigError(f"--device {device} runs on a GPU, and --gpus-per-job 0 gives the jobs none: pass --gpus-per-job 1 "
                              "(or more, for a torchrun group per job)")
        if self.gpus_per_job > 1 and not on_cuda:
            raise ConfigError(f"--gpus-per-job {self.gpus_per_job} runs each job as {self.gpus_per_job} tasks, one GPU each, and "
                              f"--device {device} would leave the GPUs idle: pass --device cuda (or --gpus-per-job 0 for CPU jobs)")
        if self.gpus_per_job > 1 and device != "cuda":
            raise ConfigError(f"--gpus-per-job {self.gpus_per_job}: each task of a job uses the GPU of its local rank, and --device "
                              f"{device} names one: pass --device cuda")

    def check_scheduler(self) -> None:
        """Refuse ``submitit`` where Slurm's commands are missing (a dry run plans without them)."""
        if self.kind == "submitit" and not (shutil.which("sbatch") and shutil.which("srun")):
            raise ConfigError("--launcher submitit submits Slurm jobs, and this machine has no sbatch/srun on its PATH: run it on "
                              "the cluster's login node, or pass --launcher submitit-local to run the same jobs here")

    def parameters(self) -> dict[str, Any]:
        """The executor's parameters (the Slurm ones are ignored by submitit's local executor). Several GPUs per job:
        one task per GPU (``tasks_per_node``), each with its share of ``cpus_per_job``."""
        tasks = max(1, self.gpus_per_job)
        cpus = None if self.cpus_per_job is None else self.cpus_per_job // tasks
        given = {"timeout_min": self.time_min, "gpus_per_node": self.gpus_per_job, "tasks_per_node": tasks if tasks > 1 else None,
                 "cpus_per_task": cpus, "mem_gb": self.mem_gb, "slurm_partition": self.partition, "slurm_account": self.account,
                 "slurm_array_parallelism": self.max_jobs}
        return {key: value for key, value in given.items() if value is not None}
