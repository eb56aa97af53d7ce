"""The fast evaluation path: CPU workers decode once, the GPU degrades, preprocesses and scores.

Per image, one decode feeds the whole degradation grid. Degradations that the GPU reproduces (see
``gpu_degrade``) run there, batched over images of the same size; the others (JPEG, WebP, noise, crops)
run in the DataLoader workers with the reference implementation on the same decoded image. With
``nvjpeg=True`` (opt-in) and a grid that is all GPU-capable, JPEG files are decoded on the GPU
(``torchvision.io.decode_jpeg(device="cuda")``) and PNGs in the workers. nvjpeg is not the default: on an
H100 (torch 2.11) its pixels differ from PIL's libjpeg-turbo decode by 6 grey levels on average
(``tests/gpu``), far outside the resize tolerance, so decoding stays with PIL unless asked. Preprocessing follows the
detector's input spec on the GPU, then one bf16-autocast forward per degradation (scores in fp32).

Each prediction records which implementation produced it (``impl``), because the fast path matches the
reference within stated tolerances, not bit for bit.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from mirage_bench.degradations import image_seed
from mirage_bench.detectors.base import Detector
from mirage_bench.engine import distributed
from mirage_bench.engine.evaluator import Scores, assert_exactly_once, forward_by_size, keep_list, map_by_shape
from mirage_bench.fastpath.gpu_degrade import gpu_plan
from mirage_bench.fastpath.gpu_preprocess import eval_preprocess, supported
from mirage_bench.errors import ConfigError

_JPEG_MAGIC = b"\xff\xd8\xff"


def _pil_to_uint8(image: Any) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image, dtype=np.uint8).copy()).permute(2, 0, 1).contiguous()  # [3, H, W]


class _DecodedGrid(Dataset):
    """Item: (row, clean uint8 [3,H,W] or JPEG bytes, {degradation index: CPU-degraded uint8})."""

    def __init__(self, manifest: pd.DataFrame, degradations: Sequence[Any], cpu_indices: list[int], base_seed: int, raw_jpeg: bool) -> None:
        self.paths = manifest["path"].tolist()
        self.ids = manifest["image_id"].tolist()
        self.degradations = list(degradations)
        self.cpu_indices = cpu_indices
        self.base_seed = base_seed
        self.raw_jpeg = raw_jpeg

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, bool, dict[int, torch.Tensor]]:
        from mirage_bench.data.images import open_rgb
        from mirage_bench.degradations import image_seed

        if self.raw_jpeg:  # only when every degradation runs on the GPU (no CPU variant needs pixels)
            with open(self.paths[i], "rb") as fh:
                data = fh.read()
            if data[:3] == _JPEG_MAGIC:
                return i, torch.frombuffer(bytearray(data), dtype=torch.uint8), True, {}
        image = open_rgb(self.paths[i])
        seed = image_seed(self.base_seed, self.ids[i])
        variants = {j: _pil_to_uint8(self.degradations[j].apply(image, seed)) for j in self.cpu_indices}
        return i, _pil_to_uint8(image), False, variants


def implementation_names(degradations: Sequence[Any], nvjpeg: bool) -> list[str]:
    """The ``impl`` recorded for each degradation's predictions."""
    decode = "nvjpeg" if nvjpeg else "pil"
    return [f"fast:{decode}+{'gpu' if gpu_plan(d) is not None else 'cpu-ref'}-degrade+gpu-preprocess" for d in degradations]


@torch.no_grad()
def score_subset_fast(
    detector: Detector,
    manifest: pd.DataFrame,
    degradations: Sequence[Any],
    *,
    base_seed: int = 0,
    batch_size: int = 64,
    device: str | torch.device = "cuda",
    workers: int = 8,
    nvjpeg: bool = False,
    bf16: bool = True,
    compile_model: bool = False,
    on_batch: Callable[[int], None] | None = None,
) -> tuple[Scores, list[str]]:
    """Scores of every image under every degradation (sharded across ranks as the reference scorer), and
    the implementation name recorded for each degradation. ``compile_model`` runs the detector under
    ``torch.compile`` (1.6x model-only on ViT-L/14 on an H100; compiling costs about a minute)."""
    spec = detector.input_spec
    if not supported(spec):
        raise ConfigError(
            f"the fast path reproduces bicubic/bilinear preprocessing only; detector {detector.recipe.name!r} uses "
            f"{spec.interpolation!r}. Use --impl reference."
        )
    device = torch.device(device)
    manifest = manifest.reset_index(drop=True)
    rank, world = distributed.rank_and_world()
    shard = np.arange(len(manifest))[rank::world]
    full, manifest = manifest, manifest.iloc[shard].reset_index(drop=True)
    plans = [gpu_plan(d) for d in degradations]
    cpu_indices = [j for j, plan in enumerate(plans) if plan is None]
    use_nvjpeg = nvjpeg and device.type == "cuda" and not cpu_indices
    dataset = _DecodedGrid(manifest, degradations, cpu_indices, base_seed, raw_jpeg=use_nvjpeg)
    # Workers decode small chunks (all of them stay busy even for a few model batches); the main process
    # gathers chunks into model batches of ``batch_size`` images.
    chunk = max(1, min(8, batch_size))
    loader = DataLoader(
        dataset, batch_size=chunk, shuffle=False, num_workers=workers, collate_fn=keep_list,
        pin_memory=device.type == "cuda", persistent_workers=False, prefetch_factor=4 if workers else None,
    )
    logits = torch.empty(len(degradations), len(manifest), dtype=torch.float32)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16 and device.type == "cuda")
    was_training = detector.training
    detector.eval()
    model = torch.compile(detector) if compile_model else detector
    for items in _batched(loader, batch_size):
        rows = [item[0] for item in items]
        clean = _to_device([item for item in items], device)
        batch_logits = []
        for j, plan in enumerate(plans):
            degraded = map_by_shape(clean, plan) if plan is not None else [item[3][j].to(device, non_blocking=True) for item in items]
            batch = map_by_shape(degraded, lambda x: eval_preprocess(x, spec))
            with autocast:
                batch_logits.append(forward_by_size(model, batch, device, torch.channels_last))
        logits[:, rows] = torch.stack(batch_logits).cpu()  # one device-to-host copy per batch
        if on_batch:
            on_batch(len(items) * len(plans))
    detector.train(was_training)
    gathered = distributed.gather_shards(shard, logits.numpy(), len(full))
    seeds = np.array([image_seed(base_seed, i) for i in full["image_id"]], dtype=np.int64)
    assert_exactly_once(full, gathered)
    return Scores(full, list(degradations), gathered, seeds), implementation_names(degradations, use_nvjpeg)


def _batched(loader: DataLoader, batch_size: int):
    """Model batches of ``batch_size`` items out of the loader's chunks (the last one may be smaller)."""
    pending: list = []
    for chunk in loader:
        pending.extend(chunk)
        while len(pending) >= batch_size:
            yield pending[:batch_size]
            pending = pending[batch_size:]
    if pending:
        yield pending


def _to_device(items: list, device: torch.device) -> list[torch.Tensor]:
    """Clean images on the device; JPEG bytes are decoded there in one nvjpeg batch call."""
    out: list[torch.Tensor | None] = [None] * len(items)
    jpeg = [k for k, item in enumerate(items) if item[2]]
    if jpeg:
        from torchvision.io import ImageReadMode, decode_jpeg

        decoded = decode_jpeg([items[k][1] for k in jpeg], mode=ImageReadMode.RGB, device=device)
        for k, image in zip(jpeg, decoded):
            out[k] = image
    for k, item in enumerate(items):
        if not item[2]:
            out[k] = item[1].to(device, non_blocking=True)
    return out  # type: ignore[return-value]
