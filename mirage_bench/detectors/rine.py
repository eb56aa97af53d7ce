"""RINE (Koutlis & Papadopoulos, ECCV 2024): the class token of every CLIP encoder block, weighted per block.

Frozen CLIP image tower; from each residual block the class token is read where the authors' forward hooks read
it (the output of the block's second LayerNorm ``ln_2``: after attention, before the MLP), giving ``[B, n, d]``
for n blocks of width d. Trainable parts, named as in the authors' state dict (mever-team/rine@325a1c9,
src/models.py) but for ``head``, so that their released files load strictly through the published card's key map:

- ``proj1``: Dropout, then ``nproj`` x (Linear, ReLU, Dropout), d -> q, applied to each block's token;
- ``alpha`` ``[1, n, q]``: the Trainable Importance Estimator; softmax over the n blocks, per feature;
- the weighted sum over blocks, then ``proj2``: Dropout, ``nproj`` x (Linear q -> q, ReLU, Dropout) -> z;
- ``head``: Linear q -> q, ReLU, Dropout, Linear q -> q, ReLU, Dropout, Linear q -> 1 (the fake logit); ours is
  named ``classifier`` because ``head(features)`` is the contract's method (the published card renames ``head.``).

Training loss (src/utils.py ``train_one_experiment``): summed binary cross-entropy plus ``contrastive_factor``
times the supervised contrastive loss on the normalised z (temperature 0.07).
"""

from __future__ import annotations

from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from mirage_bench.config import RecipeCard
from mirage_bench.detectors.base import Detector, required_backbone
from mirage_bench.detectors.clip.backbone import CLIP_BACKBONE_EXAMPLE, load_clip
from mirage_bench.detectors.clip.prompted_detector import TINY_CLIP_OVERRIDES
from mirage_bench.detectors.clip.supcon import supcon_loss


class RINEParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    proj_dim: int = Field(128, ge=1, description="q: width of the projections and the head (2-class model: 128)")
    nproj: int = Field(4, ge=1, description="Linear-ReLU-Dropout layers in each projection (2-class model: 4)")
    dropout: float = Field(0.5, ge=0, lt=1, description="every Dropout's p (nn.Dropout's default, as the authors use)")
    contrastive_factor: float = Field(0.2, ge=0, description="weight of the supervised contrastive loss")
    temperature: float = Field(0.07, gt=0, description="the contrastive loss's temperature (= its base temperature)")
    bce_reduction: Literal["sum", "mean"] = Field("sum", description="the authors sum the BCE over the batch")


def _projection(n_layers: int, d_in: int, d_out: int, p: float) -> nn.Sequential:
    """Dropout, then ``n_layers`` x (Linear, ReLU, Dropout): the authors' indices (Linear at 1, 4, 7, ...)."""
    layers: list[nn.Module] = [nn.Dropout(p)]
    for i in range(n_layers):
        layers += [nn.Linear(d_in if i == 0 else d_out, d_out), nn.ReLU(), nn.Dropout(p)]
    return nn.Sequential(*layers)


class RINE(Detector):
    """Frozen CLIP image tower -> class token after every block's ``ln_2`` ``[B, n, d]`` -> proj1, alpha, proj2, head."""

    Params = RINEParams
    frozen_encoder = True  # checkpoints differ only in the trainable parts: scored together, they share one tower forward
    tiny_overrides = (*TINY_CLIP_OVERRIDES, "params.proj_dim=16", "params.nproj=2")

    def __init__(self, recipe: RecipeCard) -> None:
        super().__init__(recipe)
        clip, self._identity = load_clip(required_backbone(recipe, CLIP_BACKBONE_EXAMPLE))
        self.hold_frozen("encoder", clip.visual)
        blocks = self.encoder.transformer.resblocks
        width, n_blocks, p = int(self.encoder.transformer.width), len(blocks), self.params
        self.alpha = nn.Parameter(torch.randn(1, n_blocks, p.proj_dim))
        self.proj1 = _projection(p.nproj, width, p.proj_dim, p.dropout)
        self.proj2 = _projection(p.nproj, p.proj_dim, p.proj_dim, p.dropout)
        self.classifier = nn.Sequential(
            nn.Linear(p.proj_dim, p.proj_dim), nn.ReLU(), nn.Dropout(p.dropout),
            nn.Linear(p.proj_dim, p.proj_dim), nn.ReLU(), nn.Dropout(p.dropout),
            nn.Linear(p.proj_dim, 1),
        )

    def encode(self, images: Tensor) -> Tensor:
        """The class token at every block's ``ln_2`` output, ``[B, n_blocks, width]`` fp32 (frozen weights only)."""
        tokens: list[Tensor] = []
        hooks = [
            block.ln_2.register_forward_hook(lambda _m, _i, out: tokens.append(out[:, 0]))  # batch-first [B, L, d]
            for block in self.encoder.transformer.resblocks
        ]
        try:
            with torch.no_grad():
                self.encoder(images)
        finally:
            for hook in hooks:
                hook.remove()
        return torch.stack(tokens, dim=1).float()

    def embed(self, features: Tensor) -> Tensor:
        """z ``[B, q]``: each block's token projected, weighted by softmax(alpha) over blocks, summed, projected."""
        g = self.proj1(features.to(self.alpha.dtype))  # [B, n, q]
        return self.proj2((torch.softmax(self.alpha, dim=1) * g).sum(dim=1))

    def head(self, features: Tensor) -> Tensor:
        """Fake logits ``[B]`` fp32 from the per-block class tokens."""
        return self.classifier(self.embed(features)).squeeze(1).float()

    def forward(self, images: Tensor) -> Tensor:
        return self.check_output(images, self.head(self.encode(images)))

    def training_loss(self, images: Tensor, labels: Tensor, image_ids: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        z = self.embed(self.encode(images))
        logits = self.classifier(z).squeeze(1).float()
        bce = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction=self.params.bce_reduction)
        empty = z.new_zeros(0, z.shape[1])
        none = labels.new_zeros(0)
        contrastive = supcon_loss(
            F.normalize(z.float(), dim=1), labels, torch.arange(len(labels)), empty, none, none, empty, none,
            temperature=self.params.temperature,
        )
        loss = bce + self.params.contrastive_factor * contrastive
        return loss, {"loss": float(loss.detach()), "bce": float(bce.detach()), "contrastive": float(contrastive.detach())}

    def backbone_identity(self) -> dict[str, Any]:
        return dict(self._identity)
