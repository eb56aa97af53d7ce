"""Degradations as the papers made them: a registered library with canonical specs, per-image seeds and
the papers' presets.

- ``parse("jpeg(quality=65)").spec == "jpeg(q=65)"``; ``Degradation.apply(img, seed)`` at native resolution.
- ``image_seed(base_seed, image_id)``: the seed of one image, the same in every batch, worker and process.
- ``expand(["genimage", "jpeg(q=90)"])``: presets and specs, in order, de-duplicated; ``PRESETS`` holds them.
- ``augment("cnnspot(p=0.5)")``: CNNSpot's training augmentation, drawn from a ``torch.Generator``.
"""

from mirage_bench.degradations import ops as _ops  # noqa: F401  (registers the image operations)
from mirage_bench.degradations.augment import AUGMENT_PRESETS, AUGMENTATIONS, augment, training_augmentation
from mirage_bench.degradations.base import DEGRADATIONS, Chain, Degradation, Identity, parse
from mirage_bench.degradations.presets import PRESETS, Preset, expand
from mirage_bench.degradations.seeds import image_seed

__all__ = [
    "AUGMENTATIONS",
    "AUGMENT_PRESETS",
    "DEGRADATIONS",
    "PRESETS",
    "Chain",
    "Degradation",
    "Identity",
    "Preset",
    "augment",
    "expand",
    "image_seed",
    "parse",
    "training_augmentation",
]
