"""A detector's frozen ``encode`` behind the feature cache: the only place cached features are made.

The detector must declare ``frozen_encoder`` (``encode(images) -> [B, D]`` reads frozen weights alone and
``forward`` is ``head(encode(images))``; UnivFD and CoOp do, which the conformance check verifies), plus
``backbone_identity()`` and its frozen modules; the keys carry the detector's input spec, so features made
with other preprocessing are never reused.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from mirage_bench.detectors.base import Detector
from mirage_bench.errors import ContractError
from mirage_bench.features.cache import FeatureCache
from mirage_bench.features.keys import FeatureKey, backbone_key, input_spec_key


def _check_encoder(detector: Detector) -> None:
    if not detector.frozen_encoder:
        raise ContractError(
            f"detector {detector.recipe.detector!r} does not declare a frozen encoder (Detector.frozen_encoder), so its "
            "features cannot be cached; only detectors whose encode() reads frozen weights alone and whose forward is "
            "head(encode(x)) (e.g. univfd, coop) can use the feature cache"
        )


def feature_keys(
    detector: Detector,
    image_sha256s: Sequence[str],
    degradation: str = "none",
    degradation_seeds: Sequence[int | None] | None = None,
) -> list[FeatureKey]:
    """One key per image for ``detector``'s backbone and input spec, under one degradation spec."""
    _check_encoder(detector)
    frozen = torch.nn.ModuleList(detector.frozen_modules().values())
    backbone = backbone_key(detector.backbone_identity(), frozen)
    spec = input_spec_key(detector.input_spec)
    seeds = list(degradation_seeds) if degradation_seeds is not None else [None] * len(image_sha256s)
    if len(seeds) != len(image_sha256s):
        raise ContractError(f"got {len(image_sha256s)} image hashes but {len(seeds)} degradation seeds")
    return [FeatureKey(backbone, spec, sha, degradation, seed) for sha, seed in zip(image_sha256s, seeds)]


def encode_with_cache(
    detector: Detector,
    cache: FeatureCache,
    keys: Sequence[FeatureKey],
    load_image: Callable[[int], torch.Tensor],
    batch_size: int = 256,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Features for ``keys`` (fp16 ``[N, D]`` on the CPU); ``load_image(i)`` gives the preprocessed ``[3, H, W]``
    tensor of item ``i`` and is called only for misses, in batches of ``batch_size`` through ``detector.encode``.
    """
    _check_encoder(detector)
    device = torch.device(device) if device is not None else next(detector.parameters()).device

    def compute(indices: list[int]) -> torch.Tensor:
        out = []
        for start in range(0, len(indices), batch_size):
            batch = torch.stack([load_image(i) for i in indices[start : start + batch_size]]).to(device)
            out.append(detector.encode(batch).float().cpu())
        return torch.cat(out)

    return cache.get_or_compute(keys, compute)
