"""Block-by-block prompted towers: exact parity with open_clip, prompt effects, invariants, checkpointing."""

from __future__ import annotations

import pytest
import torch

from mirage_bench.config import BackboneConfig
from mirage_bench.detectors.clip.backbone import load_clip
from mirage_bench.detectors.clip.prompt_learner import tokenizer_for
from mirage_bench.detectors.clip.prompted_clip import check_clip, encode_image_prompted, encode_text_prompted
from mirage_bench.errors import ConfigError, ContractError


@pytest.fixture(scope="module")
def clip():
    model, _ = load_clip(BackboneConfig(name="mb-tiny-clip", pretrained="none"))
    return model


@pytest.fixture(scope="module")
def token_ids():
    return tokenizer_for("mb-tiny-clip")(["a photo of a real.", "a photo of a fake."])


def test_no_prompts_equals_encode_image_exactly(clip):
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(encode_image_prompted(clip, images, []), clip.encode_image(images))


def test_no_prompts_equals_encode_text_exactly(clip, token_ids):
    with torch.no_grad():
        assert torch.equal(encode_text_prompted(clip, token_ids), clip.encode_text(token_ids))


def test_layer0_prompt_equal_to_the_plain_text_embeddings_equals_encode_text(clip, token_ids):
    ctx_index = torch.tensor([[1, 2], [1, 2]])
    plain = clip.token_embedding.weight[token_ids[0, 1:3]]  # the embeddings of "a photo"
    with torch.no_grad():
        assert torch.equal(encode_text_prompted(clip, token_ids, [plain], ctx_index), clip.encode_text(token_ids))


def test_each_vision_prompt_layer_changes_the_features(clip):
    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    prompts = [torch.randn(2, 64) for _ in range(3)]
    with torch.no_grad():
        base = encode_image_prompted(clip, images, prompts)
        assert not torch.allclose(base, clip.encode_image(images))
        for layer in range(3):
            changed = [p.clone() for p in prompts]
            changed[layer] = torch.randn_like(changed[layer])  # (a constant shift would vanish in LayerNorm)
            assert not torch.allclose(encode_image_prompted(clip, images, changed), base), f"layer {layer} prompt has no effect"


def test_each_text_prompt_layer_changes_the_features(clip, token_ids):
    torch.manual_seed(0)
    ctx_index = torch.tensor([[1, 2], [1, 2]])
    prompts = [torch.randn(2, 48) for _ in range(3)]
    with torch.no_grad():
        base = encode_text_prompted(clip, token_ids, prompts, ctx_index)
        for layer in range(3):
            changed = [p.clone() for p in prompts]
            changed[layer] = torch.randn_like(changed[layer])  # (a constant shift would vanish in LayerNorm)
            assert not torch.allclose(encode_text_prompted(clip, token_ids, changed, ctx_index), base)


def test_activation_checkpointing_gives_the_same_values_and_gradients(clip):
    torch.manual_seed(0)
    images = torch.randn(2, 3, 32, 32)
    results = []
    for checkpointing in (False, True):
        prompts = [torch.full((2, 64), 0.1 * (i + 1), requires_grad=True) for i in range(2)]
        out = encode_image_prompted(clip, images, prompts, checkpointing=checkpointing)
        out.square().sum().backward()
        results.append((out.detach(), [p.grad for p in prompts]))
    assert torch.allclose(results[0][0], results[1][0], atol=1e-6)
    for g0, g1 in zip(results[0][1], results[1][1]):
        assert g0 is not None and torch.allclose(g0, g1, atol=1e-6)


def test_bf16_autocast_keeps_clip_fp32_and_casts_prompts(clip):
    images = torch.randn(2, 3, 32, 32)
    prompts = [torch.randn(2, 64) for _ in range(2)]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = encode_image_prompted(clip, images, prompts)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    assert clip.visual.proj.dtype == torch.float32


@pytest.mark.parametrize("depth", [0, 4])
def test_depth_outside_the_layers_is_refused_with_the_value(clip, depth):
    with pytest.raises(ConfigError, match=f"J={depth} is outside 1..3"):
        check_clip(clip, depth, vision=True)


def test_a_model_that_is_not_open_clip_clip_is_refused():
    with pytest.raises(ContractError, match="Linear"):
        check_clip(torch.nn.Linear(2, 2), 1, vision=True)
