"""The fast evaluation path: CPU workers decode once, the GPU degrades, preprocesses and scores.

Per image, one decode feeds the whole degradation grid and every model scored with it. Degradations that
the GPU reproduces (see ``gpu_degrade``) run there once, batched over images of the same size; the others
(JPEG, WebP, noise, crops) run in the DataLoader workers with the reference implementation on the same
decoded image, and reach the main process stacked per chunk (``decoded_grid``). The host never waits for the
device inside the loop. With ``nvjpeg=True`` (opt-in, ``--impl fast-nvjpeg``; the grid must be all
GPU-capable, see ``check_nvjpeg``), JPEG files are decoded on the GPU
(``torchvision.io.decode_jpeg(device="cuda")``) and PNGs in the workers. nvjpeg is not the default: on an
H100 (torch 2.11) its pixels differ from PIL's libjpeg-turbo decode by 6 grey levels on average
(``tests/gpu``), where every other step gives PIL's or scipy's bytes, so decoding stays with PIL unless asked. Preprocessing
follows each distinct input spec of the models on the GPU, then one bf16-autocast forward per model and
degradation (scores in fp32); models sharing a frozen encoder run it once (``engine.trunks``). The blur's
Triton variants that the call will launch compile in threads while the workers decode the first images (``warm``).
Each batch's pixels travel to the device on a CUDA stream of their own, while the previous batch's forwards run
(``on_device``).

Each prediction records which implementation produced it (``impl``): the pixels the models read are the
reference's bit for bit (blur, resizes, crops, PIL's decode), but the batches and bf16 autocast round the
models' floats differently.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import replace
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import pandas as pd
import torch
from torch.utils.data import DataLoader

from mirage_bench.config import InputSpec
from mirage_bench.detectors.base import Detector
from mirage_bench.scoring.reference import Scores, distinct_specs, gathered_scores, in_eval_mode, rank_shard
from mirage_bench.scoring.timing import TrunkClock
from mirage_bench.scoring.trunks import Trunk, model_trunks
from mirage_bench.errors import ConfigError, worker_errors
from mirage_bench.scoring.decoded_grid import CLEAN, RAW_JPEG, DecodedGrid, Part
from mirage_bench.scoring.device_plan import BatchOp, gpu_plan
from mirage_bench.scoring.gpu_preprocess import eval_geometry, supported
from mirage_bench.kernels.ops import host_to_device, normalize
from mirage_bench.kernels.warm import after, compiling, kernel_compiles

Group = tuple[torch.Tensor, torch.Tensor]  # (manifest rows int64 [n], images [n, ...]), both on the device


def implementation_names(degradations: Sequence[Any], nvjpeg: bool, device: torch.device) -> list[str]:
    """The ``impl`` recorded for each degradation's predictions: the decoder, where the degradation ran (the
    device's batched ops, or the CPU reference in the workers) and where preprocessing ran."""
    decode = "nvjpeg" if nvjpeg else "pil"
    on = device.type
    return [f"fast:{decode}+{on if gpu_plan(d) is not None else 'cpu-ref'}-degrade+{on}-preprocess" for d in degradations]


def check_nvjpeg(degradations: Sequence[Any], device: str | torch.device) -> None:
    """nvjpeg decoding needs a CUDA device and a grid that runs entirely there: a degradation left to the CPU
    reference needs PIL's pixels in the workers, and mixing two decoders in one grid would compare variants of
    different pixels. It also needs a torchvision that still has ``decode_jpeg`` (deprecated since 0.29)."""
    if torch.device(device).type != "cuda":
        raise ConfigError(f"--impl fast-nvjpeg decodes JPEG files on a CUDA device with nvjpeg; the device is {device}. "
                          "Use --device cuda, or --impl fast (PIL decoding).")
    on_cpu = [d.spec for d in degradations if gpu_plan(d) is None]
    if on_cpu:
        raise ConfigError(f"--impl fast-nvjpeg needs every degradation on the GPU, and {', '.join(on_cpu)} run(s) on CPU "
                          "workers with the reference implementation (on PIL-decoded pixels). Use --impl fast, or a grid of "
                          "none/blur/downscale/resize only.")
    try:
        from torchvision.io import decode_jpeg  # noqa: F401  (imported here to fail before any training, not mid-run)
    except ImportError as error:
        import torchvision

        raise ConfigError(f"--impl fast-nvjpeg decodes with torchvision.io.decode_jpeg, which torchvision "
                          f"{torchvision.__version__} does not have ({error}); torchvision deprecated its image decoders in "
                          "0.29 in favour of TorchCodec. Use --impl fast (PIL decoding), or install a torchvision that "
                          "still has decode_jpeg.") from error


def score_subset_fast(detector: Detector, manifest: pd.DataFrame, degradations: Sequence[Any], *, bf16: bool = True,
                      **kwargs: Any) -> tuple[Scores, list[str]]:
    """``score_models_fast`` for one detector: its scores and the implementation name of each degradation."""
    scores, impls = score_models_fast([detector], manifest, degradations, bf16=[bf16], **kwargs)
    return scores[0], impls


@torch.no_grad()
def score_models_fast(
    detectors: Sequence[Detector],
    manifest: pd.DataFrame,
    degradations: Sequence[Any],
    *,
    base_seed: int = 0,
    batch_size: int = 64,
    device: str | torch.device = "cuda",
    workers: int = 8,
    nvjpeg: bool = False,
    bf16: Sequence[bool] | None = None,
    compile_model: bool = False,
    on_batch: Callable[[int], None] | None = None,
    copy_stream: bool = True,
) -> tuple[list[Scores], list[str]]:
    """Each detector's scores of every image under every degradation (sharded across ranks as the reference
    scorer), and the implementation name recorded for each degradation. The models share one decode and one
    degradation per image, one preprocessing per distinct input spec, and one encoder forward per group of
    models sharing a frozen encoder (``engine.trunks``). ``bf16``: per detector, autocast its forward
    (default: all). ``compile_model`` runs each forward (or shared encoder) under ``torch.compile`` (1.44x eager
    model-only on ViT-L/14 on an H100, 2,749 images/s; compiling costs about a minute). ``on_batch`` counts
    scored (image, degradation, model) triples. ``copy_stream``: on CUDA, copy each batch to the device on a
    stream of its own, beside the previous batch's forwards (``on_device``); False queues the copies on the
    compute stream (the benchmark's baseline)."""
    for detector in detectors:
        if not supported(detector.input_spec):
            raise ConfigError(
                f"the fast path reproduces bicubic/bilinear preprocessing only; detector {detector.recipe.name!r} uses "
                f"{detector.input_spec.interpolation!r}. Use --impl reference."
            )
    device = torch.device(device)
    full, shard = rank_shard(manifest)
    manifest = full.iloc[shard].reset_index(drop=True)
    plans = [gpu_plan(d) for d in degradations]
    if nvjpeg:
        check_nvjpeg(degradations, device)
    loader = grid_loader(manifest, degradations, plans, base_seed, raw_jpeg=nvjpeg, batch_size=batch_size, workers=workers,
                         pin_memory=device.type == "cuda")
    # Logits stay on the device until the end: no batch waits for a device-to-host copy. NaN marks "not
    # scored", so a row the loop missed can never pass as a score.
    logits = [torch.full((len(degradations), len(manifest)), float("nan"), dtype=torch.float32, device=device) for _ in detectors]
    specs, spec_of = distinct_specs(detectors)
    flags = list(bf16) if bf16 is not None else [True] * len(detectors)
    if len(flags) != len(detectors):
        raise ValueError(f"bf16 gives {len(flags)} flags for {len(detectors)} detectors; give one per detector")
    autocast = [use_bf16 and device.type == "cuda" for use_bf16 in flags]
    models = [ScoringModel(trunk._replace(encode=compiled(trunk.encode)) if compile_model else trunk,
                           torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast[trunk.heads[0][0]]))
              for trunk in model_trunks(detectors, spec_of, keys=autocast)]
    clock = TrunkClock([model.trunk for model in models], device)
    compiles = kernel_compiles(manifest, degradations, batch_size, device, specs)  # planned before the fork, run after it
    copies = torch.cuda.Stream(device) if copy_stream and device.type == "cuda" else None
    chunks = iter(loader)  # forks the workers now: before any compile thread starts, and while they start decoding
    with compiling(compiles) as kernels_ready, in_eval_mode(detectors):
        batches = prepared_batches(after(kernels_ready, chunks), plans, specs, device, batch_size, copies)
        score_batches(models, batches, logits, on_batch, clock)
    scores = [gathered_scores(full, degradations, shard, out.cpu().numpy(), base_seed) for out in logits]
    forward = clock.model_seconds(len(detectors))
    return [replace(s, forward_seconds=f) for s, f in zip(scores, forward)], implementation_names(degradations, nvjpeg, device)


class ScoringModel(NamedTuple):
    """What the scoring loop calls: a trunk (one model's forward, or a frozen encoder several models share,
    with each model's head; ``engine.trunks``) and the autocast context its models run under."""

    trunk: Trunk
    autocast: torch.autocast


def compiled(model: Callable[[torch.Tensor], torch.Tensor], backend: str | Callable = "inductor") -> Callable[[torch.Tensor], torch.Tensor]:
    """``torch.compile`` with the batch dimension symbolic from the first call. Model batches vary in size (each
    subset's last batch, groups of one image size); under the default, the first new size costs a second
    compile (about a minute for ViT-L/14) before the batch turns dynamic. A batch of one still gets its own
    graph: torch specialises sizes 0 and 1."""
    model = torch.compile(model, backend=backend)

    def forward(x: torch.Tensor) -> torch.Tensor:
        torch._dynamo.maybe_mark_dynamic(x, 0)
        return model(x)

    return forward


def score_batches(models: Sequence[ScoringModel], batches: Iterable[tuple[int, Iterable[tuple[int, int, torch.Tensor, torch.Tensor]]]],
                  logits: Sequence[torch.Tensor], on_batch: Callable[[int], None] | None = None, clock: TrunkClock | None = None) -> None:
    """Write each batch's logits into ``logits[model][degradation, row]``, every trunk reading the inputs
    prepared for its spec, never waiting for the device (no host synchronisation: the GPU runs ahead of the
    host's queueing; checked in tests/gpu). ``clock`` times each trunk's forwards (CUDA events on a GPU)."""
    for count, inputs in batches:
        for j, s, rows, x in inputs:
            x = x.contiguous(memory_format=torch.channels_last)
            for t, (trunk, autocast) in enumerate(models):
                if trunk.spec == s:
                    with clock.timing(t) if clock else nullcontext(), autocast:
                        for (k, _), scores in zip(trunk.heads, trunk.logits(x)):
                            logits[k][j, rows] = scores
        if on_batch:
            on_batch(count * len(logits) * (logits[0].shape[0] if logits else 0))


#: Images a worker decodes per chunk: small, so all workers stay busy even for a few model batches.
CHUNK_IMAGES = 8


def grid_loader(manifest: pd.DataFrame, degradations: Sequence[Any], plans: Sequence[BatchOp | None], base_seed: int, *,
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
    doubling up to ``batch_size``. Why: the device idles until the first batch is gathered, and gathering 256
    images took 15 workers 1.1 s on an H100 (``benchmarks/eval_throughput.py`` row (d)), a fifth of a
    2,048-image run; small first batches let the model start on the first chunk."""
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


def prepared_batches(loader: Iterable[list[Part]], plans: Sequence[BatchOp | None], specs: Sequence[InputSpec], device: torch.device,
                     batch_size: int, copies: torch.cuda.Stream | None = None
                     ) -> Iterator[tuple[int, Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]]]:
    """Per model batch: its image count and, lazily (one degradation's tensors alive at a time), the model
    inputs ``(degradation index, spec index, manifest rows, preprocessed images of one size)``. CPU-degraded
    variants (plan None) come from the workers; the others are degraded here once for all specs, batched by
    size. The first batches ramp up from one chunk (``batch_limits``). ``copies``: the stream of the host-to-device
    copies (``on_device``)."""
    for parts, count in model_batches(loader, batch_size, ramp_from=CHUNK_IMAGES):
        yield count, _model_inputs(on_device(parts, device, copies), plans, specs)


def _model_inputs(sources: dict[int, list[Group]], plans: Sequence[BatchOp | None], specs: Sequence[InputSpec]
                  ) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
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
            from torchvision.io import ImageReadMode, decode_jpeg

            decoded = decode_jpeg(part.pixels, mode=ImageReadMode.RGB, device=device)
            by_source[CLEAN] += [(host_to_device(torch.tensor([row]), device), image[None]) for row, image in zip(part.rows, decoded)]
        else:
            rows, pixels = copied[i]
            by_source.setdefault(part.source, []).append((rows, pixels.permute(0, 3, 1, 2).contiguous()))
    return {source: merge_by_shape(groups) for source, groups in by_source.items()}
