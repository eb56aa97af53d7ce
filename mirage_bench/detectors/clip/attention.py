"""open_clip's self-attention, run batch-first without layout copies.

open_clip's residual blocks hold an ``nn.MultiheadAttention``, whose functional path (taken under CUDA
autocast and in training) works sequence-first: it copies batch-first activations into sequence-first order,
runs the input projection without its bias (added apart), copies q, k and v into per-head layout and the
output back. Counted through the dispatched aten ops under bf16 autocast (``benchmarks/attention_throughput.py``),
these steps are a quarter of the bytes that ViT-L/14's ops other than matmuls and attention move (637 against
486 MB per image); under ``torch.compile`` the q/k/v copy stays and the projection becomes a matmul batched
over token positions. :class:`SelfAttention` computes the same function on the same parameters: one
projection GEMM with its bias, ``scaled_dot_product_attention`` on strided views of its output, and the
output projection. State-dict keys, checkpoints and weight fingerprints are unchanged, and the outputs agree
with open_clip's module to float rounding (``tests/detectors/test_clip_attention.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mirage_bench.errors import ContractError


class SelfAttention(nn.Module):
    """Drop-in for a batch-first, self-attending ``nn.MultiheadAttention`` (``[B, T, E]`` in and out); holds
    that module's own parameters under the same names."""

    def __init__(self, mha: nn.MultiheadAttention) -> None:
        super().__init__()
        self.num_heads = mha.num_heads
        self.in_proj_weight = mha.in_proj_weight
        self.in_proj_bias = mha.in_proj_bias
        self.out_proj = mha.out_proj
        self.train(mha.training)

    def forward(
        self, query: Tensor, key: Tensor, value: Tensor, need_weights: bool = False, attn_mask: Tensor | None = None
    ) -> tuple[Tensor, None]:
        if key is not query or value is not query or need_weights:
            raise ContractError(
                "SelfAttention computes self-attention only (key and value must be the query tensor itself) and "
                "returns no attention weights; this block needs open_clip's nn.MultiheadAttention"
            )
        if attn_mask is not None and (attn_mask.dtype == torch.bool or attn_mask.dim() != 2):
            # nn.MultiheadAttention reads True as 'masked', SDPA as 'attend', and takes [B*H, T, T] masks:
            # refuse rather than silently change the meaning. open_clip passes additive [T, T] float masks.
            raise ContractError(
                f"SelfAttention takes an additive float mask of shape [T, T], got {attn_mask.dtype} of shape "
                f"{tuple(attn_mask.shape)}"
            )
        batch, tokens, width = query.shape
        qkv = self.project(query)
        q, k, v = qkv.view(batch, tokens, 3, self.num_heads, width // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # [B, H, T, D]
        return self.out_proj(out.transpose(1, 2).reshape(batch, tokens, width)), None

    def project(self, query: Tensor) -> Tensor:
        """q, k and v side by side, ``[B, T, 3E]``: the one place a subclass changes them (LoRA, :mod:`.lora`)."""
        return F.linear(query, self.in_proj_weight, self.in_proj_bias)


def _replaceable(block: nn.Module) -> bool:
    mha = getattr(block, "attn", None)
    return (
        isinstance(mha, nn.MultiheadAttention)
        and not hasattr(block, "ln_1_kv")  # cross-attention blocks keep open_clip's module
        and mha.batch_first
        and mha._qkv_same_embed_dim
        and mha.bias_k is None
        and mha.bias_v is None
        and not mha.add_zero_attn
        and mha.dropout == 0.0
    )


def use_self_attention(model: nn.Module) -> int:
    """Swap each of ``model``'s open_clip residual blocks' self-attention for :class:`SelfAttention`, in place;
    returns how many were swapped. Blocks of other shapes (cross-attention, dropout, separate k/v widths) keep
    open_clip's module, which computes the same function, only slower."""
    from open_clip.transformer import ResidualAttentionBlock

    swapped = 0
    for block in model.modules():
        if isinstance(block, ResidualAttentionBlock) and _replaceable(block):
            block.attn = SelfAttention(block.attn)
            swapped += 1
    return swapped
