"""The engine's one door to the data and degradation packages (imported lazily, when used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from PIL import Image


def open_rgb(path: str | Path) -> Image.Image:
    """A fully decoded RGB image, strict (see ``mirage_bench.data.images``)."""
    from mirage_bench.data.images import open_rgb as decode

    return decode(path)


def expand_degradations(names: Sequence[str]) -> list[Any]:
    """Degradations for a protocol's list (``[]`` means ``none`` only)."""
    from mirage_bench.degradations import expand

    return list(expand(list(names) or ["none"]))


def image_seed(base_seed: int, image_id: str) -> int:
    from mirage_bench.degradations import image_seed as seed_of

    return int(seed_of(base_seed, image_id))


class _InOrder:
    """Several augmentation policies applied one after the other, as ``train.augment`` lists them."""

    def __init__(self, policies: list[Any]) -> None:
        self.policies = policies

    def apply(self, image: Image.Image, generator: Any) -> Image.Image:
        for policy in self.policies:
            image = policy.apply(image, generator)
        return image


def training_augmentation(specs: Sequence[str]) -> Any | None:
    """The recipe's ``train.augment`` as one object with ``apply(img, generator)``, or None when empty."""
    if not specs:
        return None
    from mirage_bench.degradations import augment

    return _InOrder([augment(spec) for spec in specs])
