"""A CLIP image tower's last residual block, computed for the class token alone.

Why: a tower that pools its class token (CLIP's image embedding, what UnivFD reads) drops every other token of
the last block's output. The earlier blocks need all tokens (each token's keys and values feed the next
block), but in the last block only the class token's path counts: its query, attention over every token's
keys and values, the output projection and the MLP. :class:`ClassTokenBlock` computes exactly that: the
keys and values of all tokens, the rest for one token. For ViT-L/14 at 224 px the last block is 1/24 of the
tower's work, and this skips five sixths of it (the queries, the output projection and the MLP of 256 of 257
tokens): 3.4% of the tower's FLOPs (``benchmarks/attention_throughput.py``), about 7% for a 12-block ViT-B.
Every CLIP detector here reads the pooled class token (UnivFD's embedding; CoOp's and MiraGe's prompted towers,
whose prompt tokens are dropped at the pooling), and each makes the swap on the tower it holds. ``load_clip``
does not: a third-party detector may read the other tokens (``output_tokens``, ``forward_intermediates``), which
this block no longer computes. With autograd on, gradients reach the earlier blocks' tokens through the last
block's keys and values, as through the full block.

The function is the same; only the float rounding of matmuls over fewer rows may differ
(``tests/detectors/test_class_token_block.py``). State-dict keys are unchanged: the block holds the
original's modules under their names.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from mirage_bench.detectors.clip.attention import SelfAttention
from mirage_bench.errors import ContractError


class ClassTokenBlock(nn.Module):
    """Drop-in for an open_clip ``ResidualAttentionBlock`` whose attention is :class:`SelfAttention`, as the
    last block of a tower that pools its first token: ``[B, T, E]`` in, ``[B, 1, E]`` (the class token's
    output) out."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.ln_1, self.attn, self.ls_1 = block.ln_1, block.attn, block.ls_1
        self.ln_2, self.mlp, self.ls_2 = block.ln_2, block.mlp, block.ls_2
        self.train(block.training)

    def forward(self, x: Tensor, k_x: Tensor | None = None, v_x: Tensor | None = None, attn_mask: Tensor | None = None) -> Tensor:
        """open_clip's block signature (activation checkpointing passes all four positionally): self-attention of
        ``x`` without a mask only."""
        if k_x is not None or v_x is not None or attn_mask is not None:
            raise ContractError("ClassTokenBlock serves image towers, which self-attend without a mask; got separate "
                                "keys/values or an attention mask")
        batch, tokens, width = x.shape
        heads = self.attn.num_heads
        weight, bias = self.attn.in_proj_weight, self.attn.in_proj_bias
        h = self.ln_1(x)
        q = F.linear(h[:, :1], weight[:width], bias[:width] if bias is not None else None)
        kv = F.linear(h, weight[width:], bias[width:] if bias is not None else None)
        q = q.view(batch, 1, heads, width // heads).transpose(1, 2)
        k, v = kv.view(batch, tokens, 2, heads, width // heads).permute(2, 0, 3, 1, 4).unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)  # [B, H, 1, D]
        y = x[:, :1] + self.ls_1(self.attn.out_proj(out.transpose(1, 2).reshape(batch, 1, width)))
        return y + self.ls_2(self.mlp(self.ln_2(y)))


def use_class_token_block(visual: nn.Module) -> bool:
    """Make ``visual``'s last block a :class:`ClassTokenBlock`, in place, when the tower's output is its pooled
    class token alone (open_clip ``VisionTransformer`` with ``pool_type='tok'``, no attentional pooler, no
    token output) and that block's attention is :class:`SelfAttention`; returns whether it did. Towers of other
    shapes keep their block: they compute the same, only slower."""
    from open_clip.transformer import ResidualAttentionBlock, VisionTransformer

    if not (isinstance(visual, VisionTransformer) and visual.pool_type == "tok" and visual.attn_pool is None
            and not visual.output_tokens):
        return False
    blocks = visual.transformer.resblocks
    last = blocks[-1]
    # exactly SelfAttention: a subclass (LoRA's) projects q, k and v otherwise than the weights read here
    if type(last) is not ResidualAttentionBlock or type(last.attn) is not SelfAttention:
        return False
    blocks[-1] = ClassTokenBlock(last)
    return True
