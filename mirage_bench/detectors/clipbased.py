"""ClipBased (Cozzolino, Poggi, Corvi, Niessner, Verdoliva, CVPRW 2024): a linear classifier on frozen CLIP features.

As the authors' released detector builds it (grip-unina/ClipBased-SyntheticImageDetection@3247cae,
networks/openclipnet.py ``OpenClipLinear`` with ``next_to_last=True``): open_clip ViT-L/14 with its final projection
removed, so the feature is the pooled class token after ``ln_post`` (the tower's width, 1024 for ViT-L/14), L2
normalised (``encode_image(normalize=True)``), then one linear layer initialised N(0, 0.02). It is UnivFD's shape of
detector on another feature, so it reuses UnivFD's head, training and cached-feature variant.
"""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F

from pydantic import Field
from torch import Tensor

from mirage_bench.config import RecipeCard
from mirage_bench.detectors.univfd import UnivFD, UnivFDParams


class ClipBasedParams(UnivFDParams):
    next_to_last: bool = Field(True, description="read the pooled token before CLIP's final projection (the authors' "
                                                 "'opencliplinearnext_' models); false reads the projected embedding")
    normalize: bool = Field(True, description="L2-normalise the feature before the linear layer, as the authors do")


class ClipBased(UnivFD):
    """Frozen CLIP image tower (final projection removed) -> L2-normalised pooled token ``[B, D]`` -> ``Linear(D, 1)``."""

    Params = ClipBasedParams

    def __init__(self, recipe: RecipeCard) -> None:
        super().__init__(recipe)  # builds ``fc`` for ``feature_dim``, which already accounts for ``next_to_last``
        if self.params.next_to_last:
            self.encoder.proj = None  # open_clip then returns the pooled token unprojected

    @property
    def feature_dim(self) -> int:
        """The tower's width (1024 for ViT-L/14) before its projection, else the embedding width (768)."""
        return int(self.encoder.transformer.width) if self.params.next_to_last else int(self.encoder.output_dim)

    def encode(self, images: Tensor) -> Tensor:
        """The frozen feature ``[B, D]`` fp32, L2-normalised when the recipe says so (the authors' default)."""
        features = super().encode(images)
        return F.normalize(features, dim=-1) if self.params.normalize else features

    def backbone_identity(self) -> dict[str, Any]:
        """The backbone's identity plus the readout: cached features of the same tower and input (UnivFD's projected
        embedding, or ours) are then never mistaken for one another."""
        return {**super().backbone_identity(), "readout": {"next_to_last": self.params.next_to_last, "normalize": self.params.normalize}}
