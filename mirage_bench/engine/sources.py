"""The engine's one door to the data and degradation packages (imported lazily, when used).

TEMPORARY: until the ``data`` and ``degradations`` branches are merged, ``open_rgb`` decodes strictly with
PIL and only the ``none`` degradation is available locally; anything else requires the real package and
raises its ImportError. Delete the local parts once both packages are on main.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from mirage_bench.errors import DataError


def _missing(exc: ModuleNotFoundError, package: str) -> bool:
    return exc.name is not None and (exc.name == package or package.startswith(exc.name + ".") or exc.name.startswith(package))


def open_rgb(path: str | Path) -> Image.Image:
    """A fully decoded RGB image (``mirage_bench.data.images.open_rgb`` once merged)."""
    try:
        from mirage_bench.data.images import open_rgb as real
    except ModuleNotFoundError as exc:
        if not _missing(exc, "mirage_bench.data"):
            raise
        return _local_open_rgb(Path(path))
    return real(path)


def _local_open_rgb(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            image.load()
            return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot decode image {path}: {exc}. Remove it or re-download the dataset.") from exc


@dataclass(frozen=True)
class _Identity:
    spec: str = "none"

    def apply(self, image: Image.Image, seed: int) -> Image.Image:
        return image


def expand_degradations(names: Sequence[str]) -> list[Any]:
    """Degradations for a protocol's list (``[]`` means ``none`` only)."""
    names = list(names) or ["none"]
    try:
        from mirage_bench.degradations import expand
    except ModuleNotFoundError as exc:
        if not _missing(exc, "mirage_bench.degradations") or names != ["none"]:
            raise
        return [_Identity()]
    return list(expand(names))


def image_seed(base_seed: int, image_id: str) -> int:
    """The per-image degradation seed (``mirage_bench.degradations.image_seed`` once merged)."""
    try:
        from mirage_bench.degradations import image_seed as real
    except ModuleNotFoundError as exc:
        if not _missing(exc, "mirage_bench.degradations"):
            raise
        return int.from_bytes(hashlib.sha256(f"{base_seed}:{image_id}".encode()).digest()[:4], "big")
    return int(real(base_seed, image_id))


def training_augmentation(specs: Sequence[str]) -> Any | None:
    """The recipe's ``train.augment`` as one callable ``apply(img, generator)``, or None when empty."""
    if not specs:
        return None
    from mirage_bench.degradations import augment

    return augment(list(specs))
