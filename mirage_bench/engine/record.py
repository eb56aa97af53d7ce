"""The run record: everything needed to know where a number came from."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ConfigDict, PrivateAttr

from mirage_bench.detectors.infra.checkpoint import package_versions
from mirage_bench.machine import cpu_kernels


def git_commit() -> dict[str, Any]:
    """The source tree's commit and whether it had uncommitted changes (or why that is unknown)."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        return {"commit": None, "dirty": None, "why_unknown": f"{root} is not a git checkout ({type(exc).__name__})"}
    return {"commit": commit, "dirty": bool(dirty)}


def device_description(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device}: {torch.cuda.get_device_name(torch.device(device))}"
    return f"{device}: {torch.get_num_threads()} CPU threads"


def base_record(run_id: str, device: str, world_size: int) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "git": git_commit(),
        "versions": package_versions(),
        "device": device_description(device),
        "cpu_kernels": cpu_kernels(),
        "world_size": world_size,
    }


class TrainEntry(BaseModel):
    """A training cell of a run: its checkpoint and whether this run trained it."""

    model_config = ConfigDict(extra="forbid")

    cell_id: str
    detector: str
    train_generators: str
    seed: int
    checkpoint: str  # path of model.pt in the store
    checkpoint_sha256: str  # content hash of the checkpoint (cells.checkpoint_content_hash)
    trained_in_this_run: bool
    train_manifest: str  # frame_hash of the training manifest
    validation_manifest: str
    environment: Optional[int] = None  # cluster runs: index into RunRecord.environments


class EvalEntry(BaseModel):
    """An evaluation cell: one checkpoint on one test subset under one degradation."""

    model_config = ConfigDict(extra="forbid")

    cell_id: str
    train_cell_id: str
    generator: str
    degradation: str  # canonical degradation spec
    images: int
    computed_in_this_run: bool
    seconds: Optional[float] = None  # scoring seconds of a cell computed in this run
    environment: Optional[int] = None  # cluster runs: index into RunRecord.environments


class RunRecord(BaseModel):
    """Where every number of a run came from; ``runs/<run_id>/record.json`` is its JSON dump.

    The machine (``device``, ``cpu_kernels``, ``versions``, ``git``), the cards as resolved (``protocol``,
    ``recipes``), the data (``data``: each manifest's ``frame_hash`` by role and name; ``data_sources``: what reading
    it found), the grid (``seeds``, ``degradations``, ``degradation_impl``) and every cell, with what this run computed.
    Cluster runs add ``launcher``, ``jobs`` and ``environments``."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    started: str
    git: dict[str, Any]
    versions: dict[str, Optional[str]]
    device: str
    cpu_kernels: Optional[dict[str, Any]] = None  # absent from records written before kernels were recorded
    world_size: int
    protocol: dict[str, Any]  # name, version, card (the protocol card as resolved)
    recipes: dict[str, dict[str, Any]]  # recipe name -> card as resolved
    seeds: list[int]
    degradations: list[str]
    degradation_impl: str
    workers: Optional[int]
    data: dict[str, dict[str, str]]
    training_protocol: dict[str, Any]
    data_sources: list[dict[str, Any]]
    train_cells: list[TrainEntry]
    eval_cells: list[EvalEntry]
    launcher: Optional[str] = None
    jobs: Optional[list[dict[str, Any]]] = None
    environments: Optional[list[dict[str, Any]]] = None

    _report: Any = PrivateAttr(default=None)

    @property
    def report(self) -> Any:
        """The run's tables and metrics (``reports.report.Report``) when ``mirage_bench.run`` computed them, else None
        (``mirage_bench.report(out, [run_id])`` computes them for any stored run)."""
        return self._report

    def attach_report(self, report: Any) -> None:
        self._report = report

    def computed_nothing(self) -> bool:
        """Every cell was already in the store: this run trained and scored nothing."""
        return not any(c.trained_in_this_run for c in self.train_cells) and not any(c.computed_in_this_run for c in self.eval_cells)

    def json_dict(self) -> dict[str, Any]:
        """The record as ``record.json`` holds it (keys a run did not set, such as a cluster run's jobs, left out)."""
        return self.model_dump(mode="json", exclude_unset=True)
