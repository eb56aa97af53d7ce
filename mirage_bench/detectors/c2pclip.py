"""C2P-CLIP (Tan et al., AAAI 2025): category common prompts injected into CLIP's image encoder by LoRA.

As the authors' code builds it (chuangchuangtan/C2P-CLIP-DeepfakeDetection@5c1a66c, networks/trainer.py
``CLIPModel_lora``, data/datasets.py, scripts/train.py): OpenAI's CLIP ViT-L/14 with LoRA (peft) on the q, k and
v projections of every image-tower block (:mod:`~mirage_bench.detectors.clip.lora`); the image embedding (the
pooled class token after ``ln_post``, projected), L2-normalised, feeds one linear layer (``fc``, N(0, 0.02)),
whose output is the fake logit. Only the LoRA adapters and ``fc`` train; the rest of CLIP is frozen.

Training adds the category common prompt: each image's text is its caption wrapped in its class's category words
(``"Deepfake. <caption> Deepfake."`` for a fake, ``"Camera. <caption> Camera."`` for a real image), encoded by the
frozen text tower, and CLIP's symmetric contrastive loss (frozen ``logit_scale``) pulls each image embedding
toward its own text. Loss = contrastive + ``classification_weight`` x mean BCE. The authors train on 4 GPUs
under ``nn.DataParallel``: each replica scores its quarter of the batch against its quarter's texts, and the
four contrastive losses are summed (``contrastive_groups``). Inference reads the image tower and ``fc`` only.

The captions come from a captioning model (ClipCap on CLIP features, run offline by the authors) that no card can
download here, so this module uses the category words alone, with an empty caption: ``"Deepfake.  Deepfake."``
(every card says so in ``deviations``). Their two text embeddings are fixed (frozen tower, fixed text), so they are
computed once, when the detector is built, and the text tower is then let go.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn

from mirage_bench.config import RecipeCard
from mirage_bench.detectors.base import Detector, required_backbone
from mirage_bench.detectors.clip.backbone import CLIP_BACKBONE_EXAMPLE, load_clip
from mirage_bench.detectors.clip.lora import QKVLoRA, adapted, use_lora_attention
from mirage_bench.detectors.clip.prompt_learner import tokenizer_for
from mirage_bench.detectors.clip.prompted_detector import TINY_CLIP_OVERRIDES


class C2PCLIPParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lora_rank: int = Field(6, ge=1, description="r of every q/k/v adapter (the authors' scripts: 6)")
    lora_alpha: float = Field(6.0, gt=0, description="LoRA alpha; updates are scaled by alpha / r (scripts: 6)")
    lora_dropout: float = Field(0.8, ge=0, lt=1, description="dropout on each adapter's input (UFD script 0.8, GenImage 0.5)")
    classification_weight: float = Field(8.0, ge=0, description="the BCE's weight beside the contrastive loss (--claloss 8)")
    fake_prompt: str = Field("Deepfake", min_length=1, description="category words around a fake image's caption")
    real_prompt: str = Field("Camera", min_length=1, description="category words around a real image's caption")
    contrastive_groups: int = Field(4, ge=1, description="the batch is split in this many consecutive parts, each "
                                    "contrasted with its own texts and the losses summed (the authors' 4 GPUs)")
    init_std: float = Field(0.02, gt=0, description="fc weights ~ N(0, init_std), as the authors initialise them")


def clip_contrastive_loss(logits: Tensor) -> Tensor:
    """CLIP's symmetric loss on ``[n, n]`` image-text logits whose matching pairs are on the diagonal."""
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


class C2PCLIP(Detector):
    """CLIP image tower with q/k/v LoRA -> normalised image embedding ``[B, D]`` -> ``Linear(D, 1)``."""

    Params = C2PCLIPParams
    tiny_overrides = TINY_CLIP_OVERRIDES

    def __init__(self, recipe: RecipeCard) -> None:
        super().__init__(recipe)
        backbone = required_backbone(recipe, CLIP_BACKBONE_EXAMPLE)
        clip, self._identity = load_clip(backbone)
        n_blocks = use_lora_attention(clip.visual)
        self.hold_frozen("encoder", clip.visual)
        p = self.params
        width = int(clip.visual.transformer.width)
        self.lora = nn.ModuleList(QKVLoRA(width, p.lora_rank, p.lora_alpha, p.lora_dropout) for _ in range(n_blocks))
        self.fc = nn.Linear(int(clip.visual.output_dim), 1)
        nn.init.normal_(self.fc.weight, 0.0, p.init_std)
        texts = [f"{words}. {words}." for words in (p.real_prompt, p.fake_prompt)]  # "<words>. <caption> <words>." without a caption
        tokens = tokenizer_for(backbone.name)(texts).to(clip.logit_scale.device)
        with torch.no_grad():  # fixed texts through the frozen text tower: [2, D] (real, fake), normalised
            self.register_buffer("category_text", clip.encode_text(tokens, normalize=True).float(), persistent=False)
            self.register_buffer("logit_scale", clip.logit_scale.exp().float(), persistent=False)

    def embed(self, images: Tensor) -> Tensor:
        """The L2-normalised image embedding ``[B, D]`` fp32 of the tower with this detector's adapters."""
        with adapted(self.encoder, self.lora):
            return F.normalize(self.encoder(images).float(), dim=-1)

    def forward(self, images: Tensor) -> Tensor:
        return self.check_output(images, self.fc(self.embed(images)).squeeze(1).float())

    def training_loss(self, images: Tensor, labels: Tensor, image_ids: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        z = self.embed(images)
        logits = self.fc(z).squeeze(1).float()
        bce = F.binary_cross_entropy_with_logits(logits, labels.float())
        texts = self.category_text[labels.long()]  # each image's own text, [B, D]
        groups = self.params.contrastive_groups
        contrastive = sum(
            clip_contrastive_loss(self.logit_scale * zi @ ti.t()) for zi, ti in zip(z.chunk(groups), texts.chunk(groups))
        )
        loss = contrastive + self.params.classification_weight * bce
        return loss, {"loss": float(loss.detach()), "bce": float(bce.detach()), "contrastive": float(contrastive.detach())}

    def backbone_identity(self) -> dict[str, Any]:
        return dict(self._identity)
