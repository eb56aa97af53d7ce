"""Facts about a detector that need no weights: its trainable parameter count."""

from __future__ import annotations

import torch

from mirage_bench.config import RecipeCard


def count_trainable(recipe: RecipeCard) -> int:
    """Trainable parameters of ``recipe``'s detector, built on the meta device (no memory, no weights).

    The backbone is built with random weights for counting only; nothing is downloaded.
    """
    from mirage_bench.detectors.infra.build import build_detector

    meta_recipe = recipe.model_copy(deep=True)
    if meta_recipe.backbone is not None:
        meta_recipe.backbone.pretrained = "none"
    with torch.device("meta"):
        detector = build_detector(meta_recipe)
    return detector.num_trainable()
