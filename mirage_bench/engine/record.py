"""The run record: everything needed to know where a number came from."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

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
