"""Device memory traffic of the fast path's device stage, per image: the degradations the device runs and the models'
preprocessing, for the ``genimage`` grid, before and after the resize and normalisation kernels.

Why counted, not timed: the stage's cost on a GPU is its memory traffic, and this runs on any machine (the GPU
timings come from ``eval_throughput.py``). Torch ops are counted with the benchmarks' dispatch-mode counter
(bytes of each op's inputs and outputs); each Triton kernel launch, which a CPU cannot run, counts its uint8
input and output, and its result is computed by the CPU path outside the counter. The blur is the fused kernel
in every row. One batch of 4 PNGs of 512x512 and 4 JPEGs of 500x375 (GenImage's sizes) through UnivFD's input
spec (shorter side to 256, centre crop 224):
  (a) before ``kernels.resample``: resizes with ``F.interpolate`` on float32 copies, normalisation in torch ops
      and a copy into channels-last;
  (b) resizes as PIL's integer passes (one uint8 kernel per pass);
  (c) (b) and the normalisation as one kernel writing channels-last (the fast path on CUDA now).

    python benchmarks/device_traffic.py
"""

from __future__ import annotations

import sys
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch.utils._python_dispatch import _disable_current_modes

sys.path.insert(0, str(Path(__file__).parent))
from attention_throughput import ActivationTraffic  # noqa: E402
from resize_throughput import float_resize, kernel_bytes  # noqa: E402

from mirage_bench.config import InputSpec  # noqa: E402
from mirage_bench.degradations import expand  # noqa: E402
from mirage_bench.kernels import ops  # noqa: E402
from mirage_bench import preprocess  # noqa: E402
from mirage_bench.scoring import batches, device_plan  # noqa: E402
from mirage_bench.scoring.decoded_grid import CLEAN, Part  # noqa: E402

SPEC = InputSpec(size=224, resize=256)


def grid_parts(n: int, plans: list) -> list[Part]:
    """What the workers hand over for ``n`` images of each size: clean pixels and the CPU-degraded variants."""
    rng = np.random.default_rng(0)
    clean = [Part(CLEAN, tuple(range(k * n, (k + 1) * n)), torch.from_numpy(rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)))
             for k, (h, w) in enumerate(((512, 512), (375, 500)))]
    return clean + [part._replace(source=j, pixels=part.pixels.clone()) for j, plan in enumerate(plans) if plan is None for part in clean]


def device_stage_mb(parts: list[Part], plans: list, kernel_resize: bool, kernel_normalize: bool) -> tuple[float, Counter]:
    """MB per image moved by the device stage, and the bytes by op (kernels under ``kernel:``)."""
    kernels: Counter = Counter()

    def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
        kernels["kernel:blur"] += 4 * x.numel()  # two passes, uint8 in and out
        with _disable_current_modes():
            return x.clone()  # the bytes differ from a blur; the traffic does not

    def resize(x: torch.Tensor, size: tuple[int, int], interpolation: str = "bicubic") -> torch.Tensor:
        kernels["kernel:resize"] += kernel_bytes(x.shape[0], tuple(x.shape[-2:]), size, interpolation)
        with _disable_current_modes():
            return float_resize(x, size, interpolation)

    def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
        kernels["kernel:normalize"] += 5 * x.numel()  # uint8 in, float32 out
        with _disable_current_modes():
            return ops.normalize(x, mean, std).contiguous(memory_format=torch.channels_last)

    counter = ActivationTraffic()
    with ExitStack() as patches:
        patches.enter_context(mock.patch.object(device_plan, "gaussian_blur_uint8", blur))
        for module in (device_plan, preprocess):
            patches.enter_context(mock.patch.object(module, "resize_uint8", resize if kernel_resize else float_resize))
        if kernel_normalize:
            patches.enter_context(mock.patch.object(batches, "normalize", normalize))
        with counter, torch.no_grad():
            for _, _, _, x in batches._model_inputs(batches.on_device(parts, torch.device("cpu")), plans, [SPEC]):
                x.contiguous(memory_format=torch.channels_last)  # what score_batches hands the model
    moved = Counter({k: v for k, v in counter.bytes.items() if k != "empty_like"}) + kernels  # empty_like moves nothing
    images = sum(len(part.rows) for part in parts if part.source == CLEAN)
    return sum(moved.values()) / images / 1e6, moved


def main() -> None:
    from rich.console import Console
    from rich.table import Table

    degradations = expand(["none", "genimage"])
    plans = device_plan.device_plans(degradations)
    parts = grid_parts(4, plans)
    images = sum(len(part.rows) for part in parts if part.source == CLEAN)
    table = Table(title=f"Device stage of the genimage grid ({len(degradations)} variants), UnivFD's input spec: memory traffic")
    for column in ("row", "MB/image", "vs (a)", "largest terms (MB/image)"):
        table.add_column(column, justify="right" if column in ("MB/image", "vs (a)") else "left")
    rows = [("(a) float resizes, torch-op normalisation", False, False), ("(b) PIL-integer resize kernel", True, False),
            ("(c) (b) + normalisation kernel (now)", True, True)]
    baseline = None
    for name, kernel_resize, kernel_normalize in rows:
        mb, moved = device_stage_mb(parts, plans, kernel_resize, kernel_normalize)
        baseline = baseline or mb
        terms = ", ".join(f"{op} {v / images / 1e6:.1f}" for op, v in moved.most_common(4))
        table.add_row(name, f"{mb:.1f}", f"{baseline / mb:.2f}x less" if mb != baseline else "1.00x", terms)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
