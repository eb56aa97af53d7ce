"""Which Triton kernel variants a fast scoring call will launch, known before any image is decoded: the blur's (a
variant per class of image shape, from the manifest's sizes and the grid's device blurs), the resize's and the
normalisation's. The scorer compiles them in threads (``kernels.warm``) after forking its workers (a fork in the
middle of a compile could leave a pipe or a lock held in a worker), and its first batch waits for them.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import pandas as pd
import torch

from mirage_bench.config import InputSpec
from mirage_bench.kernels import triton_kernels
from mirage_bench.kernels.ops import blur_radius
from mirage_bench.scoring.device_plan import DevicePlan

#: Images in a group of one size whose flat pixel count covers every divisibility by 16 that Triton specialises
#: on: a group of n images is in the class of the largest power of two dividing n, and 16 or more all in one.
GROUP_COUNTS = (1, 2, 4, 8, 16)


def blur_launch_shapes(manifest: pd.DataFrame, plans: Sequence[DevicePlan | None], batch_size: int) -> set[tuple[tuple[int, int, int, int], int]]:
    """``(shape, radius)`` of blur launches that reach every variant the device ``plans`` can launch over
    ``manifest``'s image sizes (its ``width`` and ``height`` columns; none without them), for groups of any
    count up to ``batch_size``: one size of each ``size_class``, at each of ``GROUP_COUNTS``."""
    if not {"width", "height"} <= set(manifest.columns):
        return set()
    size_class = triton_kernels.blur().size_class
    known = manifest[["width", "height"]].dropna()  # a size the manifest does not know compiles on first launch
    known = known[(known["width"] > 0) & (known["height"] > 0)].astype(int)
    sizes = set(zip(known["width"].tolist(), known["height"].tolist()))
    blurring = [plan for plan in plans if plan is not None and plan.blur_inputs((1, 1))]
    chosen: dict[tuple[Any, ...], tuple[int, int, int]] = {}
    for plan in blurring:
        for size in sizes:
            for sigma, (w, h) in plan.blur_inputs(size):
                radius = blur_radius(sigma)
                chosen.setdefault((radius, *size_class(h, w, radius)), (h, w, radius))
    return {((n, 3, h, w), radius) for h, w, radius in chosen.values() for n in GROUP_COUNTS if n <= batch_size}


def kernel_compiles(manifest: pd.DataFrame, plans: Sequence[DevicePlan | None], batch_size: int, device: torch.device,
                    specs: Sequence[InputSpec] = ()) -> list[Callable[[], None]]:
    """The compile jobs of the Triton kernel variants that scoring ``manifest`` under the degradations' device
    ``plans`` on ``device`` will launch (CUDA only; none elsewhere): the blur's, the normalisation's, and the
    resize's if a plan or one of the models' input ``specs`` resizes (an upscale of images smaller than the crop
    alone compiles on first launch).
    QuickGELU's one variant compiles on the first forward, which in a run that trained comes during validation,
    before any scoring."""
    if device.type != "cuda":
        return []
    if device.index is None:  # the jobs' threads would read "current device" as theirs, which starts at 0
        device = torch.device("cuda", torch.cuda.current_device())
    shapes = blur_launch_shapes(manifest, plans, batch_size)
    jobs = triton_kernels.blur().variant_compiles(sorted(shapes), device) if shapes else []
    if any(spec.resize_for(training=False) is not None for spec in specs) or any(plan is not None and plan.resizes for plan in plans):
        jobs.append(triton_kernels.resample().variant_compile(device))
    return jobs + triton_kernels.normalize().variant_compiles(device)


