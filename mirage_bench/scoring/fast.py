"""The fast evaluation path: CPU workers decode once, the GPU degrades, preprocesses and scores.

Per image, one decode feeds the whole degradation grid and every model scored with it. Degradations that
the GPU reproduces (``device_plan``) run there once, batched over images of the same size; the others
(JPEG, WebP, noise, crops) run in the DataLoader workers with the reference implementation on the same
decoded image, and reach the main process stacked per chunk (``decoded_grid``, ``batches``). The host never waits for the
device inside the loop. With ``nvjpeg=True`` (opt-in, ``--impl fast-nvjpeg``; the grid must be all
GPU-capable, see ``check_nvjpeg``), JPEG files are decoded on the GPU
(``torchvision.io.decode_jpeg(device="cuda")``) and PNGs in the workers. nvjpeg is not the default: its pixels differ
from PIL's libjpeg-turbo decode (``tests/gpu``), where every other step gives PIL's or scipy's bytes, so decoding
stays with PIL unless asked. Preprocessing
follows each distinct input spec of the models on the GPU, then one bf16-autocast forward per model and
degradation (scores in fp32); models sharing a frozen encoder run it once (``trunks``). The blur's
Triton variants that the call will launch compile in threads while the workers decode the first images (``warmup``).
Each batch's pixels travel to the device on a CUDA stream of their own, while the previous batch's forwards run
(``batches.on_device``).

Each prediction records which implementation produced it (``impl``): the pixels the models read are the
reference's bit for bit (blur, resizes, crops, PIL's decode), but the batches and bf16 autocast round the
models' floats differently.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, Iterable, NamedTuple, Sequence

import PIL
import pandas as pd
import torch

from mirage_bench.degradations import Degradation
from mirage_bench.detectors.base import Detector
from mirage_bench.errors import ConfigError
from mirage_bench.kernels import triton_kernels
from mirage_bench.kernels.resample import pass_order_known
from mirage_bench.kernels.warm import after, compiling
from mirage_bench.preprocess import batch_supported
from mirage_bench.scoring.batches import ModelInput, grid_loader, prepared_batches
from mirage_bench.scoring.device_plan import DevicePlan, device_plans
from mirage_bench.scoring.scorer import OnBatch, Scorer, distinct_specs, in_eval_mode
from mirage_bench.scoring.scores import Scores, gathered_scores, rank_shard
from mirage_bench.scoring.timing import TrunkClock
from mirage_bench.scoring.trunks import Trunk, model_trunks
from mirage_bench.scoring.warmup import kernel_compiles


class FastScorer(Scorer):
    """The device degrades, preprocesses and scores (see the module docstring). ``nvjpeg``: decode JPEG files on the
    device (``--impl fast-nvjpeg``). ``compile``: each forward (or shared encoder) under ``torch.compile`` (its
    speed-up and cost: ``benchmarks/RESULTS.md``). ``bf16``: autocast every forward (True/False), or, by default, as
    each detector's recipe says (``train.bf16``); CUDA only. ``copy_stream``: on CUDA, copy each batch to the device
    on a stream of its own, beside the previous batch's forwards (``batches.on_device``); False queues the copies
    on the compute stream (the benchmark's baseline)."""

    def __init__(self, device: str | torch.device = "cuda", *, batch_size: int = 64, workers: int = 8, nvjpeg: bool = False,
                 compile: bool = False, bf16: bool | None = None, copy_stream: bool = True) -> None:
        self.device = torch.device(device)
        self.batch_size, self.workers, self.nvjpeg, self.compile = batch_size, workers, nvjpeg, compile
        self.bf16, self.copy_stream = bf16, copy_stream
        self.impl = "fast-nvjpeg" if nvjpeg else "fast"

    def check(self, degradations: Sequence[Degradation]) -> list[str]:
        self._refuse(degradations, device_plans(degradations))
        if pass_order_known():
            return []
        return [f"Pillow {PIL.__version__}: the order of its two resize passes has not been measured (kernels.resample), so the "
                "fast path resizes with PIL itself (degradations on the CPU workers, the models' preprocessing on the host): "
                "the reference's pixels, more slowly."]

    def _refuse(self, degradations: Sequence[Degradation], plans: Sequence[DevicePlan | None]) -> None:
        if self.nvjpeg:
            check_nvjpeg(degradations, plans, self.device)
        if self.device.type == "cuda":
            triton_kernels.require()

    @torch.no_grad()
    def score(self, detectors: Sequence[Detector], manifest: pd.DataFrame, degradations: Sequence[Degradation], *,
              base_seed: int = 0, on_batch: OnBatch | None = None) -> list[Scores]:
        for detector in detectors:
            if not batch_supported(detector.input_spec):
                raise ConfigError(
                    f"the fast path reproduces bicubic/bilinear preprocessing only; detector {detector.recipe.name!r} uses "
                    f"{detector.input_spec.interpolation!r}. Use --impl reference."
                )
        device = self.device
        plans = device_plans(degradations)
        self._refuse(degradations, plans)
        full, shard = rank_shard(manifest)
        manifest = full.iloc[shard].reset_index(drop=True)
        loader = grid_loader(manifest, degradations, plans, base_seed, raw_jpeg=self.nvjpeg, batch_size=self.batch_size,
                             workers=self.workers, pin_memory=device.type == "cuda")
        # Logits stay on the device until the end: no batch waits for a device-to-host copy. NaN marks "not
        # scored", so a row the loop missed can never pass as a score.
        logits = [torch.full((len(degradations), len(manifest)), float("nan"), dtype=torch.float32, device=device) for _ in detectors]
        specs, spec_of = distinct_specs(detectors)
        flags = [self.bf16 if self.bf16 is not None else detector.recipe.train.bf16 for detector in detectors]
        autocast = [use_bf16 and device.type == "cuda" for use_bf16 in flags]
        models = [ScoringModel(trunk._replace(encode=compiled(trunk.encode)) if self.compile else trunk,
                               torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast[trunk.heads[0][0]]))
                  for trunk in model_trunks(detectors, spec_of, keys=autocast)]
        clock = TrunkClock([model.trunk for model in models], device)
        compiles = kernel_compiles(manifest, plans, self.batch_size, device, specs)  # planned before the fork, run after it
        copies = torch.cuda.Stream(device) if self.copy_stream and device.type == "cuda" else None
        chunks = iter(loader)  # forks the workers now: before any compile thread starts, and while they start decoding
        with compiling(compiles) as kernels_ready, in_eval_mode(detectors):
            batches = prepared_batches(after(kernels_ready, chunks), plans, specs, device, self.batch_size, copies)
            score_batches(models, batches, logits, on_batch, clock)
        impls = implementation_names(plans, self.nvjpeg, device)
        return [gathered_scores(full, degradations, shard, out.cpu().numpy(), base_seed, impls, seconds)
                for out, seconds in zip(logits, clock.model_seconds(len(detectors)))]


def implementation_names(plans: Sequence[DevicePlan | None], nvjpeg: bool, device: torch.device) -> list[str]:
    """The ``impl`` recorded for each degradation's predictions: the decoder, where the degradation ran (the
    device's batched ops, or the CPU reference in the workers) and where preprocessing ran."""
    decode = "nvjpeg" if nvjpeg else "pil"
    on = device.type
    return [f"fast:{decode}+{on if plan is not None else 'cpu-ref'}-degrade+{on}-preprocess" for plan in plans]


def check_nvjpeg(degradations: Sequence[Degradation], plans: Sequence[DevicePlan | None], device: torch.device) -> None:
    """nvjpeg decoding needs a CUDA device and a grid that runs entirely there: a degradation left to the CPU
    reference needs PIL's pixels in the workers, and mixing two decoders in one grid would compare variants of
    different pixels. It also needs a torchvision that still has ``decode_jpeg`` (deprecated since 0.29)."""
    if device.type != "cuda":
        raise ConfigError(f"--impl fast-nvjpeg decodes JPEG files on a CUDA device with nvjpeg; the device is {device}. "
                          "Use --device cuda, or --impl fast (PIL decoding).")
    on_cpu = [d.spec for d, plan in zip(degradations, plans) if plan is None]
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


class ScoringModel(NamedTuple):
    """What the scoring loop calls: a trunk (one model's forward, or a frozen encoder several models share,
    with each model's head; ``trunks``) and the autocast context its models run under."""

    trunk: Trunk
    autocast: torch.autocast


def compiled(model: Callable[[torch.Tensor], torch.Tensor], backend: str | Callable = "inductor") -> Callable[[torch.Tensor], torch.Tensor]:
    """``torch.compile`` with the batch dimension symbolic from the first call. Model batches vary in size (each
    subset's last batch, groups of one image size); under the default, the first new size costs a second
    compile before the batch turns dynamic. A batch of one still gets its own
    graph: torch specialises sizes 0 and 1."""
    model = torch.compile(model, backend=backend)

    def forward(x: torch.Tensor) -> torch.Tensor:
        torch._dynamo.maybe_mark_dynamic(x, 0)
        return model(x)

    return forward


def score_batches(models: Sequence[ScoringModel], batches: Iterable[tuple[int, Iterable[ModelInput]]],
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


