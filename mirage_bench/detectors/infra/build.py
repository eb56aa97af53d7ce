"""Building a detector from a recipe card."""

from __future__ import annotations

from typing import Sequence

from mirage_bench.cards import load_recipe
from mirage_bench.config import RecipeCard
from mirage_bench.detectors import DETECTORS
from mirage_bench.detectors.base import Detector
from mirage_bench.errors import ContractError


def build_detector(recipe: RecipeCard) -> Detector:
    """Instantiate the registered implementation that ``recipe.detector`` names."""
    cls = DETECTORS.get(recipe.detector)
    if not (isinstance(cls, type) and issubclass(cls, Detector)):
        raise ContractError(
            f"detector {recipe.detector!r} is registered as {cls!r}, which is not a subclass of "
            "mirage_bench.detectors.base.Detector"
        )
    return cls(recipe)


def build_tiny(card: str, extra_overrides: Sequence[str] = (), recipe_dirs: Sequence[str] = ()) -> Detector:
    """The tiny, offline variant of a card (its implementation's ``tiny_overrides``) for tests."""
    recipe = load_recipe(card, (), recipe_dirs)
    cls = DETECTORS.get(recipe.detector)
    recipe = load_recipe(card, (*cls.tiny_overrides, *extra_overrides), recipe_dirs)
    return build_detector(recipe)
