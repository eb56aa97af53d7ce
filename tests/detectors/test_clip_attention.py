"""SelfAttention computes what open_clip's nn.MultiheadAttention computes, on the same parameters, without
the layout copies: outputs and gradients against the untouched module, state dicts, the mask rules. And the
CLIP detectors' attention runs as one fused kernel (``scaled_dot_product_attention``) under the bf16 autocast
that scoring and training use on GPUs, never as an explicit softmax(QK^T)V: the issue's SDPA requirement,
checked on the CPU through the aten ops the forward dispatches."""

from __future__ import annotations

import copy

import pytest
import torch
from dispatched_ops import DispatchedOps
from torch import nn

from mirage_bench.config import BackboneConfig
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.clip.attention import SelfAttention, use_self_attention
from mirage_bench.detectors.clip.backbone import load_clip, register_model_configs
from mirage_bench.detectors.clip.prompt_learner import tokenizer_for
from mirage_bench.errors import ContractError


@pytest.fixture(scope="module")
def pair():
    """open_clip's tiny CLIP as built (nn.MultiheadAttention), and a copy with SelfAttention swapped in."""
    import open_clip

    register_model_configs()
    torch.manual_seed(0)
    original = open_clip.create_model("mb-tiny-clip", pretrained=None).eval()
    swapped = copy.deepcopy(original)
    assert use_self_attention(swapped) == 6  # 3 vision + 3 text blocks
    return original, swapped


def test_load_clip_swaps_every_residual_block():
    model, _ = load_clip(BackboneConfig(name="mb-tiny-clip", pretrained="none"))
    blocks = [*model.visual.transformer.resblocks, *model.transformer.resblocks]
    assert blocks and all(isinstance(block.attn, SelfAttention) for block in blocks)
    assert not any(isinstance(m, nn.MultiheadAttention) for m in model.modules())


def test_state_dict_is_unchanged(pair):
    original, swapped = pair
    a, b = original.state_dict(), swapped.state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_image_and_text_embeddings_match_open_clip(pair):
    original, swapped = pair
    images = torch.randn(3, 3, 32, 32)
    tokens = tokenizer_for("mb-tiny-clip")(["a photo of a real.", "a photo of a fake."])  # causal mask
    with torch.no_grad():
        for encode in ("encode_image", "encode_text"):
            inputs = images if encode == "encode_image" else tokens
            expected, got = getattr(original, encode)(inputs), getattr(swapped, encode)(inputs)
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
            assert got.abs().max() > 0.1  # the comparison is not between two near-zero tensors


def test_gradients_match_open_clip(pair):
    """Prompt learning backpropagates through the frozen blocks to their inputs."""
    original, swapped = pair
    x = torch.randn(2, 5, 64)
    grads = []
    for model in (original, swapped):
        x_ = x.clone().requires_grad_(True)
        model.visual.transformer.resblocks[0](x_).square().sum().backward()
        grads.append(x_.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-5)


def test_bf16_autocast_matches_open_clip(pair):
    original, swapped = pair
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = original.encode_image(images).float(), swapped.encode_image(images).float()
    torch.testing.assert_close(got, expected, rtol=0.02, atol=0.02)


@pytest.mark.parametrize("card", ["univfd", "mirage", "coop"])
def test_clip_attention_is_fused_under_bf16_autocast(card):
    torch.manual_seed(0)
    detector = build_tiny(card, []).eval()
    x = torch.randn(2, 3, detector.input_spec.size, detector.input_spec.size)
    ops = DispatchedOps()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), ops:
        detector(x)
    fused = sorted(n for n in ops.names if "scaled_dot_product" in n)
    assert fused, sorted(set(ops.names))
    assert not any(n.startswith("_softmax") or n.startswith("softmax") for n in ops.names), sorted(set(ops.names))


def _block_ops(model) -> list[str]:
    ops = DispatchedOps()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16), ops:
        model.visual.transformer.resblocks[0](torch.randn(2, 17, 64))
    return ops.names


def test_no_layout_copies_and_one_projection_gemm_per_block(pair):
    """What the swap is for. Under CUDA autocast (GPU scoring) and in training, nn.MultiheadAttention leaves
    its fused inference kernel for the functional path (on a CPU, switching the fast path off takes it there):
    the sequence-first input is copied, projected without its bias (added apart), and q/k/v copied again
    (aten clone, twice; under torch.compile the projection becomes a matmul batched over token positions).
    Ours runs one GEMM with its bias and no copy."""
    original, swapped = pair
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        theirs = _block_ops(original)
    finally:
        torch.backends.mha.set_fastpath_enabled(True)
    ours = _block_ops(swapped)
    assert theirs.count("clone.default") == 2 and "mm.default" in theirs, theirs  # what is ruled out below
    assert "clone.default" not in ours and "mm.default" not in ours and "bmm.default" not in ours, ours
    assert ours.count("addmm.default") == 4, ours  # qkv, out, fc1, fc2


def test_refuses_cross_attention_weights_and_other_masks(pair):
    attn = pair[1].visual.transformer.resblocks[0].attn
    x = torch.randn(1, 4, 64)
    with pytest.raises(ContractError, match="self-attention only"):
        attn(x, x.clone(), x)
    with pytest.raises(ContractError, match="self-attention only"):
        attn(x, x, x, need_weights=True)
    with pytest.raises(ContractError, match="additive float mask"):
        attn(x, x, x, attn_mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ContractError, match="additive float mask"):
        attn(x, x, x, attn_mask=torch.zeros(2, 4, 4))
