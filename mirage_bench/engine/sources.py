"""The engine's one door to the data and degradation packages (imported lazily, when used)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from PIL import Image


def open_rgb(path: str | Path) -> Image.Image:
    """A fully decoded RGB image, strict (see ``mirage_bench.data.images``)."""
    from mirage_bench.data.images import open_rgb as decode

    return decode(path)


def data_findings(manifest: Any) -> dict[str, Any]:
    """What a run prints and records about the images it read: the warnings ``mirage-bench data stats`` gives
    (a format or size shortcut between reals and fakes), and the images decoding converted to RGB, by kind."""
    from mirage_bench.data.stats import conversions, data_stats

    return {"warnings": data_stats(manifest).warnings, "converted": conversions(manifest)}


def check_test_images(test: dict[str, Any], recipes: Sequence[Any]) -> dict[str, int]:
    """Before any training: refuse a test image above a recipe's pixel cap (``input.max_pixels``), naming it; and
    per recipe, how many test images its evaluation upscales (shorter side below its resize or crop)."""
    import pandas as pd

    from mirage_bench.preprocess import check_pixel_cap, eval_upscale_side

    if not test:
        return {}
    images = pd.concat(list(test.values()), ignore_index=True).drop_duplicates("path")  # reals shared by several test generators count once
    largest = images.loc[(images["width"] * images["height"]).idxmax()]
    upscaled = {}
    for recipe in recipes:
        check_pixel_cap(int(largest["width"]), int(largest["height"]), recipe.input, f"{largest['path']} (test images of {recipe.name})")
        side = eval_upscale_side(recipe.input)
        count = 0 if side is None else int((images[["width", "height"]].min(axis=1) < side).sum())
        if count:
            upscaled[recipe.name] = count
    return upscaled


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
