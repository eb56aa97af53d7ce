"""LoRA (Hu et al., ICLR 2022) on the q, k and v projections of a CLIP image tower's self-attention.

What peft's ``LoraConfig(r, lora_alpha, lora_dropout, target_modules=[q_proj, k_proj, v_proj])`` makes of a
Hugging Face CLIP vision tower, written for open_clip's fused projection: each of q, k and v gets
``W x + b + (alpha / r) * B A dropout(x)``, with ``A`` ``[r, E]`` initialised as ``nn.Linear`` (Kaiming uniform,
a = sqrt(5)), ``B`` ``[E, r]`` zero (so training starts at the frozen tower's function) and one dropout per
projection (peft's ``lora_dropout`` is a module per adapted layer, so q, k and v draw their own masks).

The adapters are trainable and belong to a detector; the tower is frozen and may be shared by several detectors
(``scoring.trunks.adopt_frozen`` points checkpoints scored together at one copy of bit-equal frozen weights). So
the tower's attention modules hold no adapter of their own: :func:`adapted` lends them a detector's adapters
for one forward, and a LoRA attention run without them raises instead of computing the frozen tower silently.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mirage_bench.detectors.clip.attention import SelfAttention
from mirage_bench.errors import ContractError


class QKVLoRA(nn.Module):
    """The low-rank updates of one attention's q, k and v: ``[B, T, E]`` -> ``[B, T, 3E]`` (q, k, v side by side)."""

    def __init__(self, width: int, rank: int, alpha: float, dropout: float) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.empty(3, rank, width))  # q, k, v
        self.B = nn.Parameter(torch.zeros(3, width, rank))
        for a in self.A:
            nn.init.kaiming_uniform_(a, a=math.sqrt(5))  # peft's init of lora_A (nn.Linear's default)
        self.dropouts = nn.ModuleList(nn.Dropout(dropout) for _ in range(3))
        self.scaling = alpha / rank

    def forward(self, x: Tensor) -> Tensor:
        updates = [F.linear(F.linear(drop(x), a), b) for drop, a, b in zip(self.dropouts, self.A, self.B)]
        return torch.cat(updates, dim=-1) * self.scaling


class LoRASelfAttention(SelfAttention):
    """:class:`SelfAttention` whose q, k, v projection adds the adapter lent to it by :func:`adapted`."""

    adapter: QKVLoRA | None = None

    def project(self, query: Tensor) -> Tensor:
        if self.adapter is None:
            raise ContractError("a LoRA attention ran without its adapter: call the tower inside lora.adapted(...) "
                                "(the detector's forward does), or it would compute the frozen tower silently")
        return super().project(query) + self.adapter(query)


def use_lora_attention(visual: nn.Module) -> int:
    """Make every residual block's :class:`SelfAttention` of ``visual`` (from ``load_clip``) a
    :class:`LoRASelfAttention` holding the same parameters, in place; returns how many blocks it found."""
    blocks = list(visual.transformer.resblocks)
    for block in blocks:
        if type(block.attn) is not SelfAttention:
            raise ContractError(f"LoRA needs open_clip blocks whose attention load_clip swapped for SelfAttention; "
                                f"got {type(block.attn).__name__} (cross-attention, dropout or separate k/v widths)")
        block.attn = LoRASelfAttention(block.attn)  # the same parameters under the same names: frozen state unchanged
    return len(blocks)


@contextmanager
def adapted(visual: nn.Module, adapters: Sequence[QKVLoRA]) -> Iterator[None]:
    """Lend ``adapters`` (one per block, in order) to ``visual``'s LoRA attentions for the duration of the block."""
    attns = [block.attn for block in visual.transformer.resblocks]
    if len(attns) != len(adapters) or not all(isinstance(a, LoRASelfAttention) for a in attns):
        raise ContractError(f"{len(adapters)} LoRA adapters for a tower of {len(attns)} blocks "
                            f"({sum(isinstance(a, LoRASelfAttention) for a in attns)} with LoRA attention)")
    for attn, adapter in zip(attns, adapters):
        object.__setattr__(attn, "adapter", adapter)  # lent, not registered: it stays in its detector's state
    try:
        yield
    finally:
        for attn in attns:
            object.__setattr__(attn, "adapter", None)
