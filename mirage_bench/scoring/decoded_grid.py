"""The fast path's worker side: decode each image once, apply the CPU-only degradations, and hand the main
process a few stacked tensors per chunk of images instead of several tensors per image.

Why stacked: every tensor a DataLoader worker returns travels through its own shared-memory file and socket
hand-over, which the main process pays for (as much as the whole model batch of a small detector, measured:
``benchmarks/RESULTS.md``). A chunk's images of one size and one source
(clean or one CPU degradation) go as one ``[n, H, W, 3]`` tensor, written straight into shared memory from
PIL's pixel buffer (one copy). Pixels stay HWC, the layout PIL hands out: the device permutes them for free,
where the CPU would pay a strided copy per image.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, get_worker_info

from mirage_bench.data.images import open_rgb
from mirage_bench.degradations import image_seed

#: ``Part.source`` of clean decoded pixels, and of JPEG files' bytes left for the GPU decoder.
CLEAN = -1
RAW_JPEG = -2
_JPEG_MAGIC = b"\xff\xd8\xff"


class Part(NamedTuple):
    """Images of one chunk from one source, of one size (a NamedTuple, so the DataLoader pins its tensors).

    ``source``: CLEAN, RAW_JPEG or the index of a CPU-degraded variant in the degradation list.
    ``rows``: positions in the scored manifest (plain ints: pickled inline, where a tensor would cost the
    main process another shared-memory hand-over).
    ``pixels``: uint8 ``[n, H, W, 3]``; for RAW_JPEG a list of n files' bytes (uint8 ``[L]``).
    """

    source: int
    rows: tuple[int, ...]
    pixels: Any


class DecodedGrid(Dataset):
    """Item ``i``: (i, clean HWC uint8 array or JPEG bytes, whether bytes, {degradation index: HWC uint8}).

    ``raw_jpeg``: return JPEG files undecoded (only when every degradation runs on the device, so no CPU
    variant needs pixels); other formats are decoded here.
    """

    def __init__(self, manifest: pd.DataFrame, degradations: Sequence[Any], cpu_indices: list[int], base_seed: int,
                 raw_jpeg: bool) -> None:
        self.paths = manifest["path"].tolist()
        self.ids = manifest["image_id"].tolist()
        self.degradations = list(degradations)
        self.cpu_indices = cpu_indices
        self.base_seed = base_seed
        self.raw_jpeg = raw_jpeg

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, Any, bool, dict[int, np.ndarray]]:
        if self.raw_jpeg:
            with open(self.paths[i], "rb") as fh:
                data = fh.read()
            if data[:3] == _JPEG_MAGIC:
                return i, torch.frombuffer(bytearray(data), dtype=torch.uint8), True, {}
        image = open_rgb(self.paths[i])
        seed = image_seed(self.base_seed, self.ids[i])
        variants = {j: np.asarray(self.degradations[j].apply(image, seed)) for j in self.cpu_indices}
        return i, np.asarray(image), False, variants  # read-only views of PIL's bytes, copied once by collate

    def collate(self, items: list[tuple[int, Any, bool, dict[int, np.ndarray]]]) -> list[Part]:
        """One Part per (source, image size) in the chunk, in a fixed order (sources, then first appearance)."""
        parts = []
        raw = [(row, data) for row, data, is_raw, _ in items if is_raw]
        if raw:
            parts.append(Part(RAW_JPEG, tuple(row for row, _ in raw), [data for _, data in raw]))
        decoded = [item for item in items if not item[2]]
        for source in (CLEAN, *self.cpu_indices):
            by_shape: dict[tuple[int, ...], list[tuple[int, np.ndarray]]] = {}
            for row, clean, _, variants in decoded:
                pixels = clean if source == CLEAN else variants[source]
                by_shape.setdefault(pixels.shape, []).append((row, pixels))
            for members in by_shape.values():
                parts.append(Part(source, tuple(row for row, _ in members), _stack([pixels for _, pixels in members])))
        return parts


def _stack(arrays: list[np.ndarray]) -> torch.Tensor:
    """``[n, H, W, 3]`` uint8, in shared memory when built in a worker (so the hand-over does not copy it)."""
    out = torch.empty((len(arrays), *arrays[0].shape), dtype=torch.uint8)
    if get_worker_info() is not None:
        out.share_memory_()
    target = out.numpy()
    for k, pixels in enumerate(arrays):
        target[k] = pixels
    return out
