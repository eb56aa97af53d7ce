"""UnivFD (Ojha, Li, Lee, CVPR 2023): one linear layer on a frozen CLIP image embedding.

The CLIP image tower is held frozen (outside ``state_dict`` and the optimiser); only ``fc`` trains. The
detector is split into ``encode(images) -> features`` and ``head(features) -> logits`` so that the engine
can train and score the head on cached frozen features (:mod:`mirage_bench.features`): a card with
``params.train_on_cached_features: true`` (``univfd-cached``) is that fast variant, labelled as such.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from mirage_bench.config import RecipeCard
from mirage_bench.detectors.base import Detector, required_backbone
from mirage_bench.detectors.clip.class_token_block import use_class_token_block
from mirage_bench.detectors.clip.backbone import CLIP_BACKBONE_EXAMPLE, load_clip


class UnivFDParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    init_std: float = Field(0.02, gt=0, description="fc weights ~ N(0, init_std), as the authors initialise them")
    train_on_cached_features: bool = Field(
        False,
        description="train the head on cached features of the evaluation transform (no augmentation): the fast variant",
    )


class UnivFD(Detector):
    """Frozen CLIP image tower -> image embedding [B, D] -> ``Linear(D, 1)``."""

    Params = UnivFDParams
    frozen_encoder = True  # checkpoints differ only in ``fc``: scored together, they share one tower forward
    tiny_overrides = (
        "backbone.name=mb-tiny-clip",
        "backbone.pretrained=none",
        "input.size=32",
        "input.resize=null",
        "train.batch_size=4",
    )

    def __init__(self, recipe: RecipeCard) -> None:
        super().__init__(recipe)
        clip, self._identity = load_clip(required_backbone(recipe, CLIP_BACKBONE_EXAMPLE))
        # Only the image tower is kept; the text tower is never used by UnivFD. The embedding is the class token's,
        # so the last block computes that token alone (``class_token_block``).
        use_class_token_block(clip.visual)
        self.hold_frozen("encoder", clip.visual)
        self.fc = nn.Linear(self.feature_dim, 1)
        nn.init.normal_(self.fc.weight, 0.0, self.params.init_std)

    @property
    def feature_dim(self) -> int:
        """Width of the image embedding, read from the model (768 for ViT-L/14)."""
        return int(self.encoder.output_dim)

    @property
    def trains_on_cached_features(self) -> bool:
        return self.params.train_on_cached_features

    def encode(self, images: Tensor) -> Tensor:
        """The frozen CLIP image embedding (not normalised, as UnivFD reads it): ``[B, D]`` fp32."""
        with torch.no_grad():
            return self.encoder(images).float()

    def head(self, features: Tensor) -> Tensor:
        """Fake logits ``[B]`` fp32 from features (fp16 cached ones included)."""
        return self.fc(features.to(self.fc.weight.dtype)).squeeze(1).float()

    def forward(self, images: Tensor) -> Tensor:
        return self.check_output(images, self.head(self.encode(images)))

    def backbone_identity(self) -> dict[str, Any]:
        return dict(self._identity)
