"""One prompt learner for CLIP, in two configurations: MaPLe-style deep multimodal prompts and CoOp.

- MaPLe (Khattak et al., CVPR 2023), as MiraGe's reconstruction uses it: prompt "a photo of a {class}."
  whose first ``n_ctx`` tokens after the start token are learnable (initialised from "a photo"); new
  learnable text tokens at layers 1..J-1; vision prompts = ``Linear(text_width -> vision_width)`` of the
  text prompts of the same layer, one linear layer per layer 0..J-1.
- CoOp (Zhou et al., IJCV 2022), as "CLIPping the Deception" (Khan & Dang-Nguyen, ICMR 2024) uses it:
  ``n_ctx`` learnable tokens, depth 1, no vision prompts, class token at the front ("real X X ... X.").

Learnable parameters: ``J * n_ctx * text_width`` (+ ``J * (text_width + 1) * vision_width`` with vision
prompts). CLIP itself is only read at construction (widths, token embeddings for ``ctx_init``) and never
stored here, so it stays out of ``state_dict``. Building works on the meta device: token ids come from the
tokenizer on the CPU, and the init embeddings are copied only when the weights hold values.
"""

from __future__ import annotations

import copy
import functools
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import Tensor, nn

from mirage_bench.errors import ConfigError, ContractError


class PromptConfig(BaseModel):
    """The prompt learner's knobs (a detector's ``Params`` fills them in)."""

    model_config = ConfigDict(extra="forbid")

    n_ctx: int = Field(ge=1, description="learnable context tokens per layer")
    depth: int = Field(ge=1, description="prompt depth J: prompts at layers 0..J-1")
    ctx_init: str | None = Field(description="text whose first n_ctx tokens initialise the context; null = random 'X' slots")
    class_names: tuple[str, str] = ("real", "fake")
    class_position: Literal["front", "end"] = "end"
    vision_prompts: bool = True
    init_std: float = Field(0.02, gt=0, description="std of the normal init of random context and deep prompts")

    @field_validator("class_names")
    @classmethod
    def _distinct(cls, v: tuple[str, str]) -> tuple[str, str]:
        if v[0].strip() == v[1].strip() or not all(n.strip() for n in v):
            raise ValueError(f"class_names must be two distinct non-empty names (real first, fake second), got {v}")
        return v


@functools.lru_cache(maxsize=8)
def tokenizer_for(model_name: str) -> Any:
    """open_clip's tokenizer for ``model_name`` (offline for OpenAI-style BPE models), built once."""
    import open_clip

    from mirage_bench.detectors.clip.backbone import register_model_configs

    register_model_configs()
    tokenizer = open_clip.get_tokenizer(model_name)
    for attr in ("encode", "sot_token_id", "eot_token_id"):
        if not hasattr(tokenizer, attr):
            raise ContractError(
                f"prompt learning needs a BPE tokenizer with .{attr} (open_clip's SimpleTokenizer); "
                f"{model_name!r} uses {type(tokenizer).__name__}"
            )
    return tokenizer


def prompt_layout(tokenizer: Any, cfg: PromptConfig, context_length: int) -> tuple[Tensor, Tensor, list[str]]:
    """Token ids ``[2, L]`` of the two class prompts, the context positions ``[2, n_ctx]`` and the texts.

    The template is "{ctx} {class}." (end) or "{class} {ctx}." (front), where ctx is ``ctx_init`` or
    ``n_ctx`` "X" placeholders; the first ``n_ctx`` tokens of ctx are the learnable slots.
    """
    ctx_text = cfg.ctx_init.strip() if cfg.ctx_init else " ".join(["X"] * cfg.n_ctx)
    ctx_tokens = tokenizer.encode(ctx_text)
    if len(ctx_tokens) < cfg.n_ctx:
        raise ConfigError(
            f"ctx_init {cfg.ctx_init!r} has {len(ctx_tokens)} tokens but n_ctx={cfg.n_ctx} slots must be "
            "initialised from it; use a longer ctx_init, a smaller n_ctx, or ctx_init: null (random init)"
        )
    texts, starts = [], []
    for name in cfg.class_names:
        if cfg.class_position == "end":
            texts.append(f"{ctx_text} {name}.")
            starts.append(1)
        else:
            texts.append(f"{name} {ctx_text}.")
            starts.append(1 + len(tokenizer.encode(name)))
    with torch.device("cpu"):  # token ids hold values even when the model is built on the meta device
        token_ids = tokenizer(texts, context_length=context_length)
    ctx_index = torch.tensor([[s + k for k in range(cfg.n_ctx)] for s in starts], dtype=torch.long, device="cpu")
    for row, (text, start) in enumerate(zip(texts, starts)):
        n_tokens = len(tokenizer.encode(text)) + 2
        if n_tokens > context_length:
            raise ConfigError(f"prompt {text!r} has {n_tokens} tokens, more than the text context length {context_length}")
        seen = token_ids[row, start : start + cfg.n_ctx].tolist()
        if seen != ctx_tokens[: cfg.n_ctx]:
            raise ContractError(f"context slots of {text!r} hold tokens {seen}, expected {ctx_tokens[: cfg.n_ctx]}")
        eot = int(token_ids[row].argmax())
        if int(token_ids[row, eot]) != tokenizer.eot_token_id:
            raise ContractError(
                f"EOT pooling takes the highest token id, but in {text!r} that is {int(token_ids[row, eot])} at "
                f"position {eot}, not the EOT token {tokenizer.eot_token_id}"
            )
    return token_ids, ctx_index, texts


def _maple_couplings(text_width: int, vision_width: int, depth: int, device: torch.device) -> nn.ModuleList:
    """MaPLe's text-to-vision couplings as its code builds them (trainers/maple.py): layer 0's own Linear, then
    layers 1..J-1 as copies of one more Linear (``_get_clones``), so the deep couplings start equal."""
    first, shared = nn.Linear(text_width, vision_width, device=device), nn.Linear(text_width, vision_width, device=device)
    return nn.ModuleList([first] + [copy.deepcopy(shared) for _ in range(depth - 1)])


class PromptLearner(nn.Module):
    """Learnable text prompts per layer and (optionally) their projections to vision prompts."""

    def __init__(self, clip: Any, tokenizer: Any, cfg: PromptConfig) -> None:
        super().__init__()
        self.cfg = cfg
        text_width = clip.transformer.width
        vision_width = clip.visual.transformer.width
        device = clip.token_embedding.weight.device
        token_ids, ctx_index, self.texts = prompt_layout(tokenizer, cfg, clip.context_length)
        # Buffers, not state: rebuilt from the config, so they never enter a checkpoint.
        self.register_buffer("token_ids", token_ids.to(device), persistent=False)  # [2, L]
        self.register_buffer("ctx_index", ctx_index.to(device), persistent=False)  # [2, n_ctx]
        self.text_prompts = nn.ParameterList(
            [nn.Parameter(torch.empty(cfg.n_ctx, text_width, device=device)) for _ in range(cfg.depth)]
        )
        self.vision_proj = _maple_couplings(text_width, vision_width, cfg.depth, device) if cfg.vision_prompts else nn.ModuleList()
        self._init_prompts(clip)

    def _init_prompts(self, clip: Any) -> None:
        for prompt in self.text_prompts:
            nn.init.normal_(prompt, std=self.cfg.init_std)
        weight = clip.token_embedding.weight
        if self.cfg.ctx_init and not weight.is_meta:
            with torch.no_grad():
                embedded = clip.token_embedding(self.token_ids[:1])  # [1, L, Dt]
                self.text_prompts[0].copy_(embedded[0, self.ctx_index[0]])

    def text_prompt_list(self) -> list[Tensor]:
        """Text prompts of layers 0..J-1, each ``[n_ctx, text_width]``."""
        return list(self.text_prompts)

    def vision_prompt_list(self) -> list[Tensor]:
        """Vision prompts of layers 0..J-1, each ``[n_ctx, vision_width]``; empty for text-only prompts."""
        return [proj(prompt) for proj, prompt in zip(self.vision_proj, self.text_prompts)]

