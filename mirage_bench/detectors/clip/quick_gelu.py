"""CLIP's QuickGELU, ``x * sigmoid(1.702 * x)``, as one op when scoring.

Why: open_clip computes it as three elementwise ops (scale, sigmoid, product), each reading and writing the MLP's
hidden activations, four times the model's width. As one op they read the input once and write the output once:
in ViT-L/14 under bf16 autocast the ops other than matmuls and attention then move 232.9 instead of 485.5 MB per
image (``benchmarks/attention_throughput.py``, counted from the dispatched ops on the CPU). Eager scoring on a GPU
pays for that traffic; ``torch.compile`` fuses the three ops itself, so under it open_clip's ops stay.

``quick_gelu`` computes in float32 and rounds once to the input's dtype: on float32 inputs exactly open_clip's
arithmetic; on bfloat16 ones, within half a unit in the last place of the exact value, where open_clip's rounding
after each of its three steps drifts by several units where the output is small (``tests/detectors/test_quick_gelu.py``). On CUDA it is one Triton kernel where Triton
imports (the same float32 arithmetic as the torch ops of other devices). Scoring only: with autograd on (training,
where MiraGe's prompt gradients flow through the frozen blocks) open_clip's ops run.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mirage_bench.kernels.device import on_tensor_device


@torch.library.custom_op("mirage_bench::quick_gelu", mutates_args=())
def quick_gelu(x: Tensor) -> Tensor:
    """``x * sigmoid(1.702 * x)`` in float32, rounded once to ``x``'s dtype (any device: torch ops)."""
    y = x.float()
    return (y * torch.sigmoid(1.702 * y)).to(x.dtype)


@quick_gelu.register_fake
def _(x: Tensor) -> Tensor:
    return torch.empty_like(x)


try:
    import triton
    import triton.language as tl
except ImportError:  # CUDA builds without Triton (Windows) run the torch ops: the same arithmetic, slower
    triton = None

if triton is not None:

    @triton.jit
    def _quick_gelu_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(x_ptr + offs, mask=mask, other=0).to(tl.float32)
        tl.store(out_ptr + offs, (x * tl.sigmoid(1.702 * x)).to(out_ptr.dtype.element_ty), mask=mask)

    def quick_gelu_triton(x: Tensor, block: int = 1024) -> Tensor:
        """``quick_gelu`` as one Triton kernel: one read of ``x``, one write of the result."""
        x = x.contiguous()
        out = torch.empty_like(x)
        with on_tensor_device(x):
            _quick_gelu_kernel[(triton.cdiv(x.numel(), block),)](x, out, x.numel(), BLOCK=block)
        return out

    quick_gelu.register_kernel("cuda")(quick_gelu_triton)


class QuickGELU(nn.Module):
    """Drop-in for open_clip's ``QuickGELU``: one op (``quick_gelu``) when scoring, open_clip's ops when autograd
    records or ``torch.compile`` traces."""

    def forward(self, x: Tensor) -> Tensor:
        if torch.is_grad_enabled() or torch.compiler.is_compiling():
            return x * torch.sigmoid(1.702 * x)
        return quick_gelu(x)


def use_fused_quick_gelu(model: nn.Module) -> int:
    """Swap each of ``model``'s open_clip ``QuickGELU`` modules for :class:`QuickGELU`, in place; returns how many
    were swapped (none in towers built with ``nn.GELU``). They hold no parameters: state dicts are unchanged."""
    from open_clip.transformer import QuickGELU as OpenClipQuickGELU

    swapped = 0
    for module in list(model.modules()):
        for name, child in module.named_children():
            if type(child) is OpenClipQuickGELU:
                setattr(module, name, QuickGELU())
                swapped += 1
    return swapped
