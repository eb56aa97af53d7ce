"""torchrun support: process groups, sharding without padding, gathering, gradient averaging.

Launch with ``torchrun --nproc_per_node N -m mirage_bench run ...``. Evaluation shards rows ``rank::world``
(never a padded sampler, which would score some images twice); training splits each global batch the same
way and averages gradients, so every rank holds the same weights. Rank 0 writes every file.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist

from mirage_bench.errors import ConfigError, DataError
from mirage_bench.machine import usable_cores


def rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """Rank 0 of the process group; before the group is joined, rank 0 of torchrun's environment (``RANK``),
    so that what a command prints or writes before its first collective happens once."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def cores_per_rank() -> int:
    """The cores this process may use, shared with the other torchrun ranks on this machine (at least 1)."""
    return max(1, usable_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def check_device(device: str) -> None:
    """Refuse a device this machine cannot use, before any work starts."""
    try:
        kind = torch.device(device).type
    except RuntimeError as exc:
        raise ConfigError(f"--device {device!r} is not a torch device; use cpu, cuda or cuda:N") from exc
    if kind == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"--device {device!r} was asked for, but torch {torch.__version__} sees no CUDA device here; use --device cpu "
            "(`mirage-bench doctor` shows what this machine has)"
        )
    if kind not in {"cpu", "cuda"}:
        raise ConfigError(f"--device {device!r}: only cpu and cuda are supported")
    index, count = torch.device(device).index, torch.cuda.device_count() if kind == "cuda" else 0
    if index is not None and index >= count:
        raise ConfigError(f"--device {device!r}: this machine has {count} CUDA device(s), numbered from 0; use cuda:0 to cuda:{count - 1}")


def init_from_env(device: str) -> str:
    """Join the torchrun process group if launched by torchrun; return the device this rank uses, made the current
    CUDA device (Triton kernels, CUDA events and synchronisation act on the current device, not a tensor's)."""
    check_device(device)
    if "WORLD_SIZE" not in os.environ or int(os.environ["WORLD_SIZE"]) <= 1 or dist.is_initialized():
        if torch.device(device).index is not None:  # cuda:N; plain "cuda" is the current device already
            torch.cuda.set_device(torch.device(device))
        return device
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device.startswith("cuda"):
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl")
        return f"cuda:{local_rank}"
    dist.init_process_group("gloo")
    return device


def barrier() -> None:
    if rank_and_world()[1] > 1:
        dist.barrier()


def broadcast_object(obj: object) -> object:
    """Rank 0's ``obj`` on every rank."""
    if rank_and_world()[1] == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_shards(shard: np.ndarray, local: np.ndarray, total: int) -> np.ndarray:
    """Put every rank's ``local[:, j]`` (for row ``shard[j]``) into a ``[D, total]`` array on every rank.

    Raises if a row is missing or scored twice: exactly-once is checked, not assumed.
    """
    _, world = rank_and_world()
    parts = [(shard, local)]
    if world > 1:
        parts = [None] * world
        dist.all_gather_object(parts, (shard, local))
    out = np.full((local.shape[0], total), np.nan, dtype=np.float32)
    counts = np.zeros(total, dtype=np.int64)
    for rows, values in parts:
        out[:, rows] = values
        np.add.at(counts, rows, 1)
    if not (counts == 1).all():
        raise DataError(
            f"sharded scoring covered {int((counts > 0).sum())} of {total} images, {int((counts > 1).sum())} more "
            "than once; every image must be scored exactly once"
        )
    return out


def average_gradients(parameters: list[torch.nn.Parameter]) -> None:
    """All-reduce and average gradients across ranks (the data-parallel step)."""
    _, world = rank_and_world()
    if world == 1:
        return
    for p in parameters:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dist.all_reduce(p.grad)
        p.grad /= world


def sync_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers (e.g. BatchNorm statistics) to every rank."""
    if rank_and_world()[1] == 1:
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)
