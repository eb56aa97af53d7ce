"""What this machine lends this process: the one place that counts usable cores and memory (no torch import
at module level)."""

from __future__ import annotations

import os

from mirage_bench.errors import ConfigError


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS has one, as taskset and containers set it)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_threads(loader_workers: int, cores: int | None = None) -> int:
    """torch intra-op threads for a process that runs a model on the CPU beside ``loader_workers`` DataLoader
    workers: the ``cores`` (default :func:`usable_cores`; under torchrun, the rank's share) that the workers leave,
    at least one. Each worker runs one thread (``torch.utils.data`` sets it so), so threads + workers stay within
    the cores. Why: torch's default (one thread per core) beside busy workers oversubscribes the cores, and its
    threads then wait for each other at every operation (measured in ``benchmarks/cpu_threads.py``)."""
    if loader_workers < 0:
        raise ConfigError(f"loader workers must be >= 0, got {loader_workers}")
    return max(1, (usable_cores() if cores is None else cores) - loader_workers)


def limit_cpu_threads(loader_workers: int, cores: int | None = None) -> int:
    """Set torch's intra-op threads to :func:`cpu_threads` and return the previous count (to restore it)."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(cpu_threads(loader_workers, cores))
    return previous


def memory_bytes(device: str) -> int | None:
    """Total memory of ``device``: the CUDA device's, or the machine's RAM for a CPU; None where unknown."""
    if str(device).startswith("cuda"):
        import torch

        return int(torch.cuda.get_device_properties(torch.device(device)).total_memory)
    if hasattr(os, "sysconf") and "SC_PHYS_PAGES" in os.sysconf_names:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return None


def cpu_kernels() -> dict[str, str | None]:
    """Which CPU kernels PyTorch runs here: its dispatch level (AVX512, AVX2, DEFAULT...), the two variables that
    lower it (read once, when torch loads), and the processor. Training results move with these, so every run
    records them and the regression gate's tolerances name the settings they were measured under."""
    import platform

    import torch

    return {"capability": torch.backends.cpu.get_cpu_capability(), "aten_cpu_capability": os.environ.get("ATEN_CPU_CAPABILITY"),
            "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"), "cpu": _processor_name() or platform.machine()}


def _processor_name() -> str | None:
    """The processor's model name from /proc/cpuinfo (Linux), else None."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None
