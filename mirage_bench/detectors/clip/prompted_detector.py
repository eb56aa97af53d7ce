"""What CoOp and MiraGe share: a frozen open_clip CLIP, one prompt learner and cosine logits to two anchors.

Scores: f = normalised image embedding of the prompted vision encoder, t_real / t_fake = normalised
embeddings of the prompted class prompts, s = CLIP's ``logit_scale.exp()`` (100 for OpenAI's weights, about
14.3 for random ones). ``forward`` returns ``s * (f.t_fake - f.t_real)``, whose sigmoid is the two-class
softmax. Logits are computed in fp32 with autocast off: bf16 cosines at scale 100 saturate and tie.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor

from mirage_bench.config import RecipeCard
from mirage_bench.detectors.base import Detector, required_backbone
from mirage_bench.detectors.clip.class_token_block import use_class_token_block
from mirage_bench.detectors.clip.backbone import CLIP_BACKBONE_EXAMPLE, load_clip
from mirage_bench.detectors.clip.prompt_learner import PromptConfig, PromptLearner, tokenizer_for
from mirage_bench.detectors.clip.prompted_clip import check_clip, encode_image_prompted, encode_text_prompted

TINY_CLIP_OVERRIDES = (
    "backbone.name=mb-tiny-clip",
    "backbone.pretrained=none",
    "input.size=32",
    "input.resize=32",
    "train.batch_size=4",
)


class PromptParams(BaseModel):
    """Prompt knobs shared by every prompted-CLIP detector."""

    model_config = ConfigDict(extra="forbid")

    n_ctx: int = Field(2, ge=1, description="learnable context tokens per layer")
    ctx_init: str | None = Field("a photo of a", description="initialise the context from this text's first n_ctx tokens; null = random")
    class_names: tuple[str, str] = Field(("real", "fake"), description="class words, real first")
    class_position: Literal["front", "end"] = Field("end", description="class token after ('end') or before ('front') the context")
    init_std: float = Field(0.02, gt=0, description="std of the normal init of random prompts")
    checkpointing: bool = Field(False, description="activation checkpointing per CLIP block (large batches)")


class PromptedCLIPDetector(Detector):
    """Frozen CLIP + :class:`PromptLearner`; subclasses say how the learner is configured and trained."""

    Params: ClassVar[type[BaseModel]] = PromptParams

    def __init__(self, recipe: RecipeCard) -> None:
        super().__init__(recipe)
        backbone = required_backbone(recipe, CLIP_BACKBONE_EXAMPLE)
        cfg = self.prompt_config()
        clip, self._identity = load_clip(backbone)
        check_clip(clip, cfg.depth, cfg.vision_prompts)
        use_class_token_block(clip.visual)  # the image embedding is the class token's; prompt tokens drop at pooling
        self.hold_frozen("clip", clip)
        self.prompts = PromptLearner(clip, tokenizer_for(backbone.name), cfg)

    def prompt_config(self) -> PromptConfig:  # pragma: no cover - abstract
        raise NotImplementedError

    def backbone_identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def logit_scale(self) -> Tensor:
        """CLIP's frozen scale s = logit_scale.exp(), fp32 (100 for OpenAI's weights)."""
        return self.clip.logit_scale.detach().float().exp()

    def encode(self, images: Tensor) -> Tensor:
        """Normalised fp32 image features ``[B, E]`` of the prompted vision encoder (CLIP's own, frozen, when
        the learner has no vision prompts: CoOp)."""
        image = encode_image_prompted(self.clip, images, self.prompts.vision_prompt_list(), bool(self.params.checkpointing))
        return F.normalize(image.float(), dim=-1)

    def anchors(self) -> Tensor:
        """Normalised fp32 class anchors ``[2, E]`` (real, fake): the prompted class prompts' text embeddings."""
        text = encode_text_prompted(
            self.clip, self.prompts.token_ids, self.prompts.text_prompt_list(), self.prompts.ctx_index, bool(self.params.checkpointing)
        )
        return F.normalize(text.float(), dim=-1)

    def features(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Normalised fp32 image features ``[B, E]`` and class anchors ``[2, E]`` (real, fake)."""
        return self.encode(images), self.anchors()

    def class_logits(self, feats: Tensor, anchors: Tensor) -> Tensor:
        """``s * [f.t_real, f.t_fake]`` in fp32, ``[B, 2]``."""
        with torch.autocast(device_type=feats.device.type, enabled=False):
            return self.logit_scale() * feats.float() @ anchors.float().T

    def head(self, feats: Tensor) -> Tensor:
        """Fake logits ``[B]`` of image features: the difference of the two cosine logits."""
        logits = self.class_logits(feats, self.anchors())
        return logits[:, 1] - logits[:, 0]

    def forward(self, images: Tensor) -> Tensor:
        return self.check_output(images, self.head(self.encode(images)))

    def training_loss(self, images: Tensor, labels: Tensor, image_ids: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """Cross-entropy over the two cosine logits (CoOp's objective)."""
        logits = self.class_logits(*self.features(images))
        loss = F.cross_entropy(logits, labels.long().to(logits.device))
        return loss, {"loss": float(loss.detach()), "logit_scale": float(self.logit_scale())}
