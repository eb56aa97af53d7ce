"""CoOp as used by "CLIPping the Deception" (Khan & Dang-Nguyen, ICMR 2024): learnable text context only.

Frozen CLIP ViT-L/14; 16 learnable context tokens with the class token at the front ("real X X ... X.");
cross-entropy over the cosine logits to the two class prompts. The prompt learner is MiraGe's, configured
with depth 1 and no vision prompts (CoOp: Zhou et al., IJCV 2022).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mirage_bench.detectors.clip.prompt_learner import PromptConfig
from mirage_bench.detectors.clip.prompted_detector import TINY_CLIP_OVERRIDES, PromptedCLIPDetector, PromptParams


class CoOpParams(PromptParams):
    n_ctx: int = Field(16, ge=1, description="learnable context tokens")
    ctx_init: str | None = Field(None, description="initialise the context from this text; null = random (CoOp's default)")
    class_position: Literal["front", "end"] = Field("front", description="'front' = 'real X X ... X.' as CLIPping uses")


class CoOp(PromptedCLIPDetector):
    """Frozen CLIP with a learnable text context (depth 1, no vision prompts); CE on the cosine logits."""

    Params = CoOpParams
    frozen_encoder = True  # no vision prompts: checkpoints scored together share one image-tower forward
    tiny_overrides = (*TINY_CLIP_OVERRIDES, "params.n_ctx=4")

    def prompt_config(self) -> PromptConfig:
        p = self.params
        return PromptConfig(
            n_ctx=p.n_ctx, depth=1, ctx_init=p.ctx_init, class_names=p.class_names,
            class_position=p.class_position, vision_prompts=False, init_std=p.init_std,
        )
