"""Running open_clip's CLIP towers block by block, so that prompts can be injected at every layer.

Deep prompts (MaPLe, Khattak et al., CVPR 2023) replace a few tokens before each of the first J residual
blocks. open_clip runs its blocks in one ``Transformer.forward``; we call the same modules
(``visual._embeds``, ``resblocks[i]``, ``visual._pool``, ``ln_final``, the projections) one by one instead
of forking open_clip, so with no prompts both functions reproduce ``encode_image`` / ``encode_text``
exactly (the parity tests check max difference 0.0).

Shapes: vision prompts are ``[n_ctx, vision_width]`` per layer, appended after the patch tokens; text
prompts are ``[n_ctx, text_width]`` per layer, written at ``ctx_index`` positions of each class prompt.
Prompts are cast to the activations' dtype where used, so bf16 autocast works with CLIP kept in fp32.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mirage_bench.errors import ConfigError, ContractError

Inject = Callable[[int, Tensor], Tensor]


def check_clip(clip: Any, depth: int, vision: bool) -> None:
    """Assert what prompt injection relies on, naming the value seen when it does not hold."""
    import open_clip
    from open_clip.transformer import VisionTransformer

    if not isinstance(clip, open_clip.CLIP):
        raise ContractError(
            f"prompt learning needs an open_clip.CLIP model (separate text tower with resblocks), got "
            f"{type(clip).__name__}; pick a backbone whose open_clip config builds CLIP, e.g. ViT-L-14-quickgelu"
        )
    visual = clip.visual
    if not isinstance(visual, VisionTransformer):
        raise ContractError(f"the vision tower must be open_clip's VisionTransformer, got {type(visual).__name__}")
    if visual.attn_pool is not None or visual.pool_type != "tok":
        raise ContractError(
            f"vision pooling must be the CLS token without attention pooling, got pool_type={visual.pool_type!r}, "
            f"attn_pool={type(visual.attn_pool).__name__ if visual.attn_pool is not None else None}"
        )
    if clip.text_pool_type != "argmax":
        raise ContractError(f"text pooling must take the EOT token (pool_type 'argmax'), got {clip.text_pool_type!r}")
    for name, transformer in (("text", clip.transformer), ("vision", visual.transformer)):
        if not transformer.batch_first:
            raise ContractError(f"the {name} transformer must run batch-first, got batch_first={transformer.batch_first}")
    layers = min(len(clip.transformer.resblocks), len(visual.transformer.resblocks)) if vision else len(clip.transformer.resblocks)
    if not 1 <= depth <= layers:
        raise ConfigError(
            f"prompt depth J={depth} is outside 1..{layers} (the number of layers of the prompted "
            f"tower{'s' if vision else ''}); set params.depth within that range"
        )


def run_blocks(blocks: Sequence[nn.Module], x: Tensor, inject: Inject, attn_mask: Tensor | None, checkpointing: bool) -> Tensor:
    """Residual blocks one by one; ``inject(i, x)`` rewrites the prompt tokens before block ``i``."""
    for i, block in enumerate(blocks):
        x = inject(i, x)
        if checkpointing and torch.is_grad_enabled():
            # Per-block activation checkpointing bounds memory for large batches; gradients still reach
            # the layer-0 prompts through every frozen block.
            x = checkpoint(block, x, None, None, attn_mask, use_reentrant=False)
        else:
            x = block(x, attn_mask=attn_mask)
    return x


def encode_image_prompted(clip: Any, images: Tensor, prompts: Sequence[Tensor] = (), checkpointing: bool = False) -> Tensor:
    """Image embeddings (not normalised) with ``prompts[i]`` as the vision prompt tokens of layer ``i``."""
    visual = clip.visual
    x = visual._embeds(images)  # [B, 1 + grid**2, Dv], after positional embedding and ln_pre
    batch = x.shape[0]
    n_ctx = prompts[0].shape[0] if prompts else 0
    if prompts:
        # MaPLe appends the layer-0 prompts after the positional embedding, before ln_pre; ln_pre acts per
        # token, so appending ln_pre(prompts) after it is the same.
        first = visual.ln_pre(prompts[0]).to(x.dtype)
        x = torch.cat([x, first.unsqueeze(0).expand(batch, -1, -1)], dim=1)  # [B, 1 + grid**2 + n_ctx, Dv]

    def inject(i: int, x: Tensor) -> Tensor:
        if 1 <= i < len(prompts):
            deep = prompts[i].to(x.dtype).unsqueeze(0).expand(batch, -1, -1)
            x = torch.cat([x[:, :-n_ctx], deep], dim=1)
        return x

    x = run_blocks(visual.transformer.resblocks, x, inject, None, checkpointing)
    pooled, _ = visual._pool(x)  # ln_post on the CLS token; the prompt tokens are dropped here
    return pooled @ visual.proj if visual.proj is not None else pooled


def encode_text_prompted(
    clip: Any,
    token_ids: Tensor,
    prompts: Sequence[Tensor] = (),
    ctx_index: Tensor | None = None,
    checkpointing: bool = False,
) -> Tensor:
    """Text embeddings (not normalised) of ``token_ids`` ``[C, L]`` with ``prompts[i]`` written at
    ``ctx_index`` ``[C, n_ctx]`` before layer ``i`` (layer 0: into the token embeddings). A prompt is
    ``[n_ctx, Dt]``, shared by every row, or ``[C, n_ctx, Dt]``, one per row (FatFormer's image-conditioned context)."""
    from open_clip.transformer import text_global_pool

    cast_dtype = clip.transformer.get_cast_dtype()
    x = clip.token_embedding(token_ids).to(cast_dtype)  # [C, L, Dt]
    if prompts and ctx_index is None:
        raise ContractError("text prompts were given without ctx_index (the positions they replace)")
    rows = torch.arange(token_ids.shape[0], device=token_ids.device).unsqueeze(1)  # [C, 1]

    def place(x: Tensor, prompt: Tensor) -> Tensor:
        values = prompt.to(x.dtype)
        if values.dim() == 2:
            values = values.unsqueeze(0).expand(token_ids.shape[0], -1, -1)  # [C, n_ctx, Dt]
        return x.index_put((rows, ctx_index), values)

    if prompts:
        x = place(x, prompts[0])
    x = x + clip.positional_embedding.to(cast_dtype)

    def inject(i: int, x: Tensor) -> Tensor:
        return place(x, prompts[i]) if 1 <= i < len(prompts) else x

    x = run_blocks(clip.transformer.resblocks, x, inject, clip.attn_mask, checkpointing)
    x = clip.ln_final(x)
    x = text_global_pool(x, token_ids, clip.text_pool_type)  # the EOT token (highest id) of each prompt
    if isinstance(clip.text_projection, nn.Linear):
        return clip.text_projection(x)
    return x @ clip.text_projection
