"""Per-image seeds that do not depend on batch, worker or process.

The seed of an image is a hash of the base seed and the image's id (BLAKE2b, never Python's salted
``hash()``), so the same image gets the same noise or crop whichever batch or process degrades it.
Seeds are 63-bit non-negative integers: they fit an int64 Parquet column, numpy and torch.
"""

from __future__ import annotations

import hashlib

_MASK = (1 << 63) - 1


def _hash(text: str) -> int:
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _MASK


def image_seed(base_seed: int, image_id: str) -> int:
    """The seed of image ``image_id`` under ``base_seed``."""
    if isinstance(base_seed, bool) or not isinstance(base_seed, int):
        raise TypeError(f"base_seed must be an int, got {base_seed!r}")
    if not isinstance(image_id, str) or not image_id:
        raise TypeError(f"image_id must be a non-empty str, got {image_id!r}")
    return _hash(f"image:{base_seed}:{image_id}")


def step_seed(seed: int, index: int) -> int:
    """The seed of step ``index`` of a chain applied with ``seed`` (steps draw independently)."""
    return _hash(f"step:{seed}:{index}")
