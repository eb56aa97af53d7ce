"""The CLIP detectors' attention runs as one fused kernel (``scaled_dot_product_attention``) under the bf16
autocast that scoring and training use on GPUs, never as an explicit softmax(QK^T)V: the issue's SDPA
requirement, checked on the CPU through the aten ops the forward dispatches."""

from __future__ import annotations

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from mirage_bench.detectors.build import build_tiny


class _Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.__name__)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("card", ["univfd", "mirage", "coop"])
def test_clip_attention_is_fused_under_bf16_autocast(card):
    torch.manual_seed(0)
    detector = build_tiny(card, []).eval()
    x = torch.randn(2, 3, detector.input_spec.size, detector.input_spec.size)
    ops = _Ops()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), ops:
        detector(x)
    fused = sorted(n for n in ops.names if "scaled_dot_product" in n)
    assert fused, sorted(ops.names)
    assert not any(n.startswith("_softmax") or n.startswith("softmax") for n in ops.names), sorted(ops.names)
