"""The one-op QuickGELU computes open_clip's ``x * sigmoid(1.702 * x)``: exactly on float32, with one rounding on
bfloat16 (so closer to the exact value); it runs only when scoring (open_clip's ops under autograd), holds no parameters, and the Triton kernel
that CUDA runs gives the torch ops' result (checked on the CPU through Triton's interpreter)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from dispatched_ops import DispatchedOps
from open_clip.transformer import QuickGELU as OpenClipQuickGELU

from mirage_bench.config import BackboneConfig
from mirage_bench.detectors.clip.backbone import load_clip, register_model_configs
from mirage_bench.detectors.clip.quick_gelu import QuickGELU, quick_gelu, use_fused_quick_gelu


def _open_clip(x: torch.Tensor) -> torch.Tensor:
    return OpenClipQuickGELU()(x)


def _inputs(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 4


def test_float32_results_are_open_clips_bit_for_bit():
    x = _inputs(4, 9, 64)
    with torch.no_grad():
        assert torch.equal(QuickGELU()(x), _open_clip(x))


def test_bfloat16_results_are_rounded_once_from_float32():
    """Within half a bfloat16 unit of the exact value (float64), which open_clip's three roundings are not always."""
    x = _inputs(4, 9, 64).bfloat16()
    with torch.no_grad():
        ours = QuickGELU()(x)
    y = x.float()
    assert torch.equal(ours, (y * torch.sigmoid(1.702 * y)).bfloat16())
    exact = x.double() * torch.sigmoid(1.702 * x.double())
    half_unit = 0.5 * torch.finfo(torch.bfloat16).eps * torch.exp2(torch.floor(torch.log2(exact.abs())))
    assert ((ours.double() - exact).abs() <= half_unit * 1.001).all()
    assert ((_open_clip(x).double() - exact).abs() > half_unit * 1.001).any()  # what one rounding buys


def test_scoring_dispatches_one_op_and_autograd_keeps_open_clips_ops():
    x = _inputs(3, 5).requires_grad_()
    with torch.no_grad(), DispatchedOps() as ops:
        QuickGELU()(x)
    assert ops.names == ["quick_gelu.default"]
    with DispatchedOps() as ops:
        out = QuickGELU()(x)
    assert "sigmoid.default" in ops.names and "quick_gelu.default" not in ops.names
    out.sum().backward()  # gradients flow through open_clip's ops, as they did before
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_load_clip_swaps_every_quick_gelu_and_keeps_the_state_dict_and_the_outputs():
    import open_clip

    register_model_configs()
    torch.manual_seed(0)  # open_clip's random init
    original = open_clip.create_model("mb-tiny-clip", pretrained=None).eval()
    swapped = copy.deepcopy(original)
    assert use_fused_quick_gelu(swapped) == 6  # 3 vision + 3 text MLPs
    assert swapped.state_dict().keys() == original.state_dict().keys()
    x = _inputs(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(swapped.encode_image(x), original.encode_image(x))
    model, _ = load_clip(BackboneConfig(name="mb-tiny-clip", pretrained="none"))
    activations = [m for m in model.modules() if isinstance(m, (QuickGELU, OpenClipQuickGELU))]
    assert activations and all(isinstance(m, QuickGELU) for m in activations)


def test_the_cuda_kernel_gives_the_torch_ops_result_in_tritons_interpreter(tmp_path):
    """What CUDA runs, on the CPU: the interpreter is chosen when the kernel is defined, hence a fresh process.
    float16 stands in for bfloat16, which numpy lacks."""
    pytest.importorskip("triton")
    for dtype in ("float32", "float16"):
        x = _inputs(3, 1000, 7).to(getattr(torch, dtype))  # 21,000 elements: a partial last block
        np.save(tmp_path / f"x_{dtype}.npy", x.numpy())
    script = (
        "import sys, numpy as np, torch\n"
        "from mirage_bench.detectors.clip.quick_gelu import quick_gelu_triton\n"
        "for dtype in ('float32', 'float16'):\n"
        "    x = torch.from_numpy(np.load(f'{sys.argv[1]}/x_{dtype}.npy'))\n"
        "    np.save(f'{sys.argv[1]}/y_{dtype}.npy', quick_gelu_triton(x).numpy())\n"
    )
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True, env={**os.environ, "TRITON_INTERPRET": "1"}, timeout=300)
    for dtype in ("float32", "float16"):
        x = torch.from_numpy(np.load(tmp_path / f"x_{dtype}.npy"))
        got = torch.from_numpy(np.load(tmp_path / f"y_{dtype}.npy"))
        assert got.dtype == x.dtype and got.shape == x.shape
        torch.testing.assert_close(got, quick_gelu(x), rtol=2e-6 if dtype == "float32" else 1e-3, atol=1e-6)
