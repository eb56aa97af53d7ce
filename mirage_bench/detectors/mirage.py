"""MiraGe: a RECONSTRUCTION from the paper's description, not the authors' code (which is not public here).

"Multimodal Discriminative Representation Learning for Generalizable AI-generated Image Detection"
(Shi et al., ACM MM 2025, arXiv 2508.01525). What we build (shared/reference/mirage.md): MaPLe-style deep
multimodal prompts on a frozen CLIP, trained with

    L = L_cls + lambda * L_disc

L_cls: cross-entropy over ``s * [f.t_real, f.t_fake]``; L_disc: supervised contrastive loss over the
batch, a FIFO memory bank and the two text anchors (:mod:`mirage_bench.detectors.clip.supcon`). The knobs to
sweep, since the paper's values are not known to us: ``lambda_disc``, ``temperature``, ``bank_size`` (K),
``n_ctx``, ``depth`` (J), and ``anchor_weight``. Ablations: ``vision_prompts`` (text-only prompts),
``disc_loss`` (L_cls only), ``memory_bank`` (contrast within the batch only).

The memory bank and the optimiser step: ``training_loss`` reads the bank as it was before this batch,
then, in training mode only, enqueues this batch's detached features (computed with the parameters
before the coming step, as MoCo does). The enqueue builds new tensors, never writing in place, so the
backward pass and the optimiser step that follow use exactly the bank the loss saw. Calls in eval mode
(validation) never touch the bank. The bank is training state: it is not in ``state_dict`` (checkpoints
hold the prompt learner only) and starts empty.
"""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from mirage_bench.config import RecipeCard
from mirage_bench.detectors.clip.prompt_learner import PromptConfig
from mirage_bench.detectors.clip.prompted_detector import TINY_CLIP_OVERRIDES, PromptedCLIPDetector, PromptParams
from mirage_bench.detectors.clip.supcon import MemoryBank, supcon_loss
from mirage_bench.errors import ContractError


class MiraGeParams(PromptParams):
    depth: int = Field(9, ge=1, description="prompt depth J: prompts replaced at layers 0..J-1")
    vision_prompts: bool = Field(True, description="false = text-only prompts (the CoOp-style ablation)")
    disc_loss: bool = Field(True, description="false = L_cls only (ablation)")
    memory_bank: bool = Field(True, description="false = contrast within the batch only (ablation)")
    bank_size: int = Field(4096, ge=1, description="K: memory bank entries")
    temperature: float = Field(0.07, gt=0, description="tau of the supervised contrastive loss")
    lambda_disc: float = Field(1.0, ge=0, description="lambda: weight of L_disc")
    anchor_weight: float = Field(1.0, ge=0, description="weight of the two text anchors' terms in L_disc (1 = plain SupCon)")


class MiraGe(PromptedCLIPDetector):
    """MiraGe (reconstruction): deep multimodal prompts, cross-entropy + supervised contrastive loss."""

    Params = MiraGeParams
    tiny_overrides = (*TINY_CLIP_OVERRIDES, "params.n_ctx=2", "params.depth=2", "params.bank_size=8")

    def __init__(self, recipe: RecipeCard) -> None:
        super().__init__(recipe)
        p = self.params
        self.bank = MemoryBank(p.bank_size, self.clip.visual.output_dim) if p.disc_loss and p.memory_bank else None

    def prompt_config(self) -> PromptConfig:
        p = self.params
        return PromptConfig(
            n_ctx=p.n_ctx, depth=p.depth, ctx_init=p.ctx_init, class_names=p.class_names,
            class_position=p.class_position, vision_prompts=p.vision_prompts, init_std=p.init_std,
        )

    def training_state(self) -> dict[str, Tensor]:
        """The memory bank (oldest first): a resumed run continues with the bank it stopped with."""
        if self.bank is None:
            return {}
        return {"bank.feats": self.bank.feats.detach().cpu(), "bank.labels": self.bank.labels.cpu(), "bank.ids": self.bank.ids.cpu()}

    def load_training_state(self, state: dict[str, Tensor]) -> None:
        if self.bank is None:
            return super().load_training_state(state)
        device = self.bank.feats.device
        self.bank.feats = state["bank.feats"].to(device)
        self.bank.labels = state["bank.labels"].to(device)
        self.bank.ids = state["bank.ids"].to(device)

    def training_loss(self, images: Tensor, labels: Tensor, image_ids: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """``L_cls + lambda * L_disc``; the bank is updated after the loss is formed (see the module notes)."""
        p = self.params
        feats, anchors = self.features(images)
        labels = labels.long().to(feats.device)
        logits = self.class_logits(feats, anchors)
        loss_cls = torch.nn.functional.cross_entropy(logits, labels)
        stats = {"loss_cls": float(loss_cls.detach()), "logit_scale": float(self.logit_scale())}
        loss = loss_cls
        if p.disc_loss:
            if self.bank is not None and image_ids is None:
                raise ContractError(
                    "MiraGe's memory bank needs image_ids (to keep an image's earlier copies out of its own "
                    "contrast set); pass them to training_loss, or set params.memory_bank=false"
                )
            # Without a bank, image ids only matter for bank entries, so any distinct ids do.
            ids = image_ids.long().to(feats.device) if image_ids is not None else torch.arange(len(labels), device=feats.device)
            if self.bank is not None:
                bank = (self.bank.feats, self.bank.labels, self.bank.ids)
            else:
                bank = (feats.new_zeros(0, feats.shape[1]), labels[:0], ids[:0])
            anchor_labels = torch.arange(anchors.shape[0], device=feats.device)  # t_real -> 0, t_fake -> 1
            loss_disc = supcon_loss(feats, labels, ids, *bank, anchors, anchor_labels, p.temperature, p.anchor_weight)
            loss = loss_cls + p.lambda_disc * loss_disc
            stats["loss_disc"] = float(loss_disc.detach())
            if self.bank is not None and self.training:
                self.bank.enqueue(feats, labels, ids)
                stats["bank_fill"] = float(len(self.bank))
        stats["loss"] = float(loss.detach())
        return loss, stats
