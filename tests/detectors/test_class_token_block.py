"""ClassTokenBlock: a class-token-pooling tower gives the same embedding with its last block computed for the
class token alone, on the same parameters (state dict unchanged), and does less work; towers whose output
reads other tokens keep their block."""

from __future__ import annotations

import copy

import pytest
import torch
from open_clip.model import CLIPVisionCfg, _build_vision_tower
from open_clip.transformer import ResidualAttentionBlock
from torch.utils.checkpoint import checkpoint
from torch.utils.flop_counter import FlopCounterMode

from mirage_bench.config import BackboneConfig
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.clip.class_token_block import ClassTokenBlock, use_class_token_block
from mirage_bench.detectors.clip.attention import use_self_attention
from mirage_bench.detectors.clip.backbone import load_clip, register_model_configs
from mirage_bench.detectors.clip.prompted_clip import encode_image_prompted
from mirage_bench.errors import ContractError

TINY = dict(image_size=32, layers=3, width=64, head_width=16, patch_size=8)


def tower(quick_gelu: bool = True, **cfg):
    """A small open_clip image tower (random weights, fixed seed) with SelfAttention, as load_clip makes it."""
    torch.manual_seed(0)
    visual = _build_vision_tower(24, CLIPVisionCfg(**{**TINY, **cfg}), quick_gelu=quick_gelu).eval()
    use_self_attention(visual)
    return visual


def swapped(visual):
    out = copy.deepcopy(visual)
    assert use_class_token_block(out)
    assert isinstance(out.transformer.resblocks[-1], ClassTokenBlock)
    return out


@pytest.mark.parametrize("cfg", [
    {},
    {"quick_gelu": False, "ls_init_value": 0.5},  # GELU and LayerScale on both residual branches
    {"final_ln_after_pool": True},
    {"mlp_ratio": 2.0, "head_width": 32},
], ids=["clip", "layerscale-gelu", "ln-after-pool", "other-widths"])
def test_embedding_matches_the_full_last_block(cfg):
    original = tower(**cfg)
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected, got = original(images), swapped(original)(images)
    assert got.shape == expected.shape == (3, 24)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert expected.abs().max() > 0.1  # not two near-zero tensors


def test_bf16_autocast_matches_the_full_last_block():
    original = tower()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        expected, got = original(images).float(), swapped(original)(images).float()
    torch.testing.assert_close(got, expected, rtol=0.02, atol=0.02)


def test_state_dict_is_unchanged():
    original = tower()
    a, b = original.state_dict(), swapped(original).state_dict()
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_last_block_computes_for_the_class_token_only():
    """The keys and values of all 17 tokens (a sixth of the full block's matmuls), everything else for one token
    (a 17th): under a quarter of the full block's FLOPs (0.22 here)."""
    original = tower()
    x = torch.randn(2, 17, 64)

    def flops(block) -> int:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            out = block(x)
        return counter.get_total_flops(), out

    full, expected = flops(original.transformer.resblocks[-1])
    cls_only, got = flops(swapped(original).transformer.resblocks[-1])
    assert got.shape == (2, 1, 64)
    torch.testing.assert_close(got, expected[:, :1], rtol=1e-5, atol=1e-5)
    assert cls_only < 0.25 * full


@pytest.mark.parametrize("cfg", [{"pool_type": "avg"}, {"output_tokens": True}, {"attentional_pool": True}],
                         ids=["average-pool", "token-output", "attention-pool"])
def test_towers_reading_other_tokens_keep_their_last_block(cfg):
    visual = tower(**cfg)
    last = visual.transformer.resblocks[-1]
    assert not use_class_token_block(visual)
    assert visual.transformer.resblocks[-1] is last


def test_block_with_open_clip_attention_is_kept():
    torch.manual_seed(0)
    visual = _build_vision_tower(24, CLIPVisionCfg(**TINY), quick_gelu=True).eval()  # nn.MultiheadAttention
    assert not use_class_token_block(visual)
    assert type(visual.transformer.resblocks[-1]) is ResidualAttentionBlock


def test_gradients_reach_the_earlier_tokens_as_through_the_full_block():
    """MiraGe's prompt tokens get their gradients through the frozen blocks; activation checkpointing calls the
    block with open_clip's four positional arguments."""
    original = tower()
    x = torch.randn(2, 17, 64)
    grads = []
    for block in (original.transformer.resblocks[-1], swapped(original).transformer.resblocks[-1]):
        x_ = x.clone().requires_grad_(True)
        checkpoint(block, x_, None, None, None, use_reentrant=False)[:, 0].square().sum().backward()
        grads.append(x_.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-5, atol=1e-6)
    assert grads[0][:, 1:].abs().max() > 1e-3  # the other tokens' gradients are compared, not just the class token's


def test_prompted_towers_give_the_same_embeddings_and_prompt_gradients():
    """CoOp's and MiraGe's image path (``encode_image_prompted``: deep vision prompts appended after the class and
    patch tokens, dropped at the pooling)."""
    import open_clip

    register_model_configs()
    torch.manual_seed(0)
    clip = open_clip.create_model("mb-tiny-clip", pretrained=None).eval()
    use_self_attention(clip)
    ours = copy.deepcopy(clip)
    assert use_class_token_block(ours.visual)
    images = torch.randn(2, 3, 32, 32)
    prompts = [torch.randn(2, 64) for _ in range(3)]  # two tokens before each of the 3 blocks
    embeddings, grads = [], []
    for model in (clip, ours):
        leaves = [p.clone().requires_grad_(True) for p in prompts]
        out = encode_image_prompted(model, images, leaves)
        out.square().sum().backward()
        embeddings.append(out.detach())
        grads.append([p.grad for p in leaves])
    torch.testing.assert_close(embeddings[1], embeddings[0], rtol=1e-5, atol=1e-5)
    for got, expected in zip(grads[1], grads[0]):
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
        assert expected.abs().max() > 1e-3


@pytest.mark.parametrize("kwargs", [{"attn_mask": torch.zeros(17, 17)}, {"k_x": torch.randn(1, 17, 64)}], ids=["mask", "cross"])
def test_masks_and_cross_attention_are_refused(kwargs):
    block = swapped(tower()).transformer.resblocks[-1]
    with pytest.raises(ContractError, match="without a mask"):
        block(torch.randn(1, 17, 64), **kwargs)


@pytest.mark.parametrize("card,tower_of", [("univfd", lambda d: d.encoder), ("coop", lambda d: d.clip.visual),
                                           ("mirage", lambda d: d.clip.visual)])
def test_clip_detectors_run_their_towers_with_the_class_token_block(card, tower_of):
    assert isinstance(tower_of(build_tiny(card)).transformer.resblocks[-1], ClassTokenBlock)


def test_load_clip_keeps_every_tokens_output_for_other_callers():
    """A third-party detector may read the tower's other tokens: only our class-token detectors swap the block."""
    model, _ = load_clip(BackboneConfig(name="mb-tiny-clip", pretrained="none"))
    assert type(model.visual.transformer.resblocks[-1]) is ResidualAttentionBlock
