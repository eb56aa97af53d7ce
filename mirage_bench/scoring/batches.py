"""The fast scorer's data path: CPU workers' chunks of decoded (and CPU-degraded) images -> model batches -> on the
device, degraded by the device plans and preprocessed for each input spec (``preprocess.eval_geometry``, then
``kernels.ops.normalize``).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Iterable, Iterator, Sequence

import pandas as pd
import torch
from torch.utils.data import DataLoader

from mirage_bench.config import InputSpec
from mirage_bench.degradations import Degradation
from mirage_bench.errors import worker_errors
from mirage_bench.kernels.device import host_to_device
from mirage_bench.kernels.ops import normalize
from mirage_bench.preprocess import eval_geometry
from mirage_bench.scoring.decoded_grid import CLEAN, RAW_JPEG, DecodedGrid, Part
from mirage_bench.scoring.device_plan import DevicePlan

Group = tuple[torch.Tensor, torch.Tensor]  # (manifest rows int64 [n], images [n, ...]), both on the device
ModelInput = tuple[int, int, torch.Tensor, torch.Tensor]  # (degradation index, spec index, manifest rows, images)


#: Images a worker decodes per chunk: small, so all workers stay busy even for a few model batches.
CHUNK_IMAGES = 8


def grid_loader(manifest: pd.DataFrame, degradations: Sequence[Degradation], plans: Sequence[DevicePlan | None], base_seed: int, *,
                raw_jpeg: bool, batch_size: int, workers: int, pin_memory: bool) -> DataLoader:
    """Workers apply the degradations without a device plan and decode chunks of at most ``CHUNK_IMAGES`` images
    (small, so all of them stay busy even for a few model batches of ``batch_size``), each returned as a list of
    stacked Parts (``decoded_grid``)."""
    cpu_indices = [j for j, plan in enumerate(plans) if plan is None]
    dataset = DecodedGrid(manifest, degradations, cpu_indices, base_seed, raw_jpeg)
    return DataLoader(dataset, batch_size=max(1, min(CHUNK_IMAGES, batch_size)), shuffle=False, num_workers=workers,
                      collate_fn=dataset.collate, pin_memory=pin_memory, prefetch_factor=4 if workers else None)


#: Most uint8 pixel bytes (clean and CPU-degraded, all sizes) in one model batch: 256 images of 512 px with two
#: CPU variants take 0.6 GB; 256 camera photos of 12 Mpx would take 28 GB before any float copy, so such
#: batches are cut short instead of running the device out of memory.
MAX_BATCH_BYTES = 2 << 30


def image_count(parts: list[Part]) -> int:
    """Images in a chunk or batch (each image has exactly one clean or raw Part row)."""
    return sum(len(part.rows) for part in parts if part.source in (CLEAN, RAW_JPEG))


def _bytes(parts: list[Part]) -> int:
    return sum(part.pixels.numel() if part.source != RAW_JPEG else sum(data.numel() for data in part.pixels) for part in parts)


def batch_limits(batch_size: int, ramp_from: int | None = None) -> Iterator[int]:
    """Image limits of successive model batches: ``batch_size`` each, or, with ``ramp_from``, starting there and
    doubling up to ``batch_size``. Why: the device idles until the first batch is gathered, a large share of a
    short run (``benchmarks/eval_throughput.py`` row (d), ``benchmarks/RESULTS.md``); small first batches let the
    model start on the first chunk."""
    limit = min(ramp_from or batch_size, batch_size)
    while True:
        yield limit
        limit = min(2 * limit, batch_size)


def model_batches(loader: Iterable[list[Part]], batch_size: int, max_bytes: int = MAX_BATCH_BYTES, ramp_from: int | None = None
                  ) -> Iterator[tuple[list[Part], int]]:
    """Whole chunks gathered into model batches of at most ``batch_limits`` images and ``max_bytes`` of pixels
    (a single chunk may exceed it), with their image counts. A full batch goes at once, without waiting for the
    next chunk."""
    limits = batch_limits(batch_size, ramp_from)
    limit = next(limits)
    pending: list[Part] = []
    count = size = 0
    for parts in worker_errors(loader):
        n, b = image_count(parts), _bytes(parts)
        if pending and (count + n > limit or size + b > max_bytes):
            yield pending, count
            pending, count, size, limit = [], 0, 0, next(limits)
        pending.extend(parts)
        count, size = count + n, size + b
        if count >= limit:
            yield pending, count
            pending, count, size, limit = [], 0, 0, next(limits)
    if pending:
        yield pending, count


def prepared_batches(loader: Iterable[list[Part]], plans: Sequence[DevicePlan | None], specs: Sequence[InputSpec], device: torch.device,
                     batch_size: int, copies: torch.cuda.Stream | None = None
                     ) -> Iterator[tuple[int, Iterator[ModelInput]]]:
    """Per model batch: its image count and, lazily (one degradation's tensors alive at a time), the model
    inputs ``(degradation index, spec index, manifest rows, preprocessed images of one size)``. CPU-degraded
    variants (plan None) come from the workers; the others are degraded here once for all specs, batched by
    size. The first batches ramp up from one chunk (``batch_limits``). ``copies``: the stream of the host-to-device
    copies (``on_device``)."""
    for parts, count in model_batches(loader, batch_size, ramp_from=CHUNK_IMAGES):
        yield count, _model_inputs(on_device(parts, device, copies), plans, specs)


def _model_inputs(sources: dict[int, list[Group]], plans: Sequence[DevicePlan | None], specs: Sequence[InputSpec]
                  ) -> Iterator[ModelInput]:
    for j, plan in enumerate(plans):
        degraded = [(rows, plan(x)) for rows, x in sources[CLEAN]] if plan is not None else sources[j]
        for s, spec in enumerate(specs):
            for rows, x in merge_by_shape([(rows, eval_geometry(x, spec)) for rows, x in degraded]):
                yield j, s, rows, normalize(x, spec.mean, spec.std)


def merge_by_shape(groups: list[Group]) -> list[Group]:
    """Concatenate groups of equally sized images, so each batched op and forward runs once per size."""
    by_shape: dict[tuple[int, ...], list[Group]] = {}
    for rows, x in groups:
        by_shape.setdefault(tuple(x.shape[1:]), []).append((rows, x))
    return [members[0] if len(members) == 1 else (torch.cat([r for r, _ in members]), torch.cat([x for _, x in members]))
            for members in by_shape.values()]


def on_device(parts: list[Part], device: torch.device, copies: torch.cuda.Stream | None = None) -> dict[int, list[Group]]:
    """Each source's images on the device as NCHW uint8, merged by size; JPEG bytes are decoded there in one
    nvjpeg call.

    ``copies``: a CUDA stream for the host-to-device copies. On the current (compute) stream, a batch's copies
    would wait for the kernels already queued (the previous batch's forwards) and the model for them: about half
    a GB of pixels per batch of 256 (clean and two JPEG variants). On a stream of their own, the copy engine moves
    batch k+1 while the SMs run batch k; the current stream waits for the copies before the first kernel that
    reads them, and the copied tensors are recorded as used there, so the caching allocator never hands their
    memory to the next batch's copies before those kernels ran."""
    copied: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    with torch.cuda.stream(copies) if copies is not None else nullcontext():
        for i, part in enumerate(parts):
            if part.source != RAW_JPEG:
                copied[i] = (host_to_device(torch.tensor(part.rows), device), part.pixels.to(device, non_blocking=True))
    if copies is not None:
        compute = torch.cuda.current_stream(device)
        compute.wait_stream(copies)
        for tensors in copied.values():
            for tensor in tensors:
                tensor.record_stream(compute)
    by_source: dict[int, list[Group]] = {CLEAN: []}
    for i, part in enumerate(parts):
        if part.source == RAW_JPEG:
            from torchvision.io import ImageReadMode, decode_jpeg  # deprecated since torchvision 0.29: only nvjpeg runs need it

            decoded = decode_jpeg(part.pixels, mode=ImageReadMode.RGB, device=device)
            by_source[CLEAN] += [(host_to_device(torch.tensor([row]), device), image[None]) for row, image in zip(part.rows, decoded)]
        else:
            rows, pixels = copied[i]
            by_source.setdefault(part.source, []).append((rows, pixels.permute(0, 3, 1, 2).contiguous()))
    return {source: merge_by_shape(groups) for source, groups in by_source.items()}
