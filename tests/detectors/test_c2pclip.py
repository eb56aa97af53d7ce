"""C2P-CLIP: q/k/v LoRA in a CLIP image tower, a linear head on the normalised embedding, a category-prompt
contrastive loss; one forward and one loss against references written here from the paper and the authors' code
(chuangchuangtan/C2P-CLIP-DeepfakeDetection@5c1a66c: networks/trainer.py, data/datasets.py; peft's LoRA)."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mirage_bench.cards import load_recipe
from mirage_bench.detectors.c2pclip import C2PCLIP
from mirage_bench.detectors.clip.backbone import RANDOM_INIT_SEED
from mirage_bench.detectors.clip.lora import QKVLoRA
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.infra.inspect import count_trainable
from mirage_bench.errors import ContractError
from mirage_bench.preprocess import train_transform

from test_baselines_contract import _tiny_tree


def open_clip_twin(detector: C2PCLIP) -> torch.nn.Module:
    """open_clip's own tiny CLIP (its modules, not our swapped attention) holding the detector's frozen weights: the
    random ones load_clip draws (text tower included), the image tower's as the detector holds it."""
    torch.manual_seed(RANDOM_INIT_SEED)
    clip = open_clip.create_model("mb-tiny-clip", pretrained=None)
    clip.visual.load_state_dict(detector.encoder.state_dict())
    return clip.eval().requires_grad_(False)


def lora_updates(detector: C2PCLIP) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per block, the adapters as peft holds them for q_proj, k_proj, v_proj: lora_A [3, r, E], lora_B [3, E, r]."""
    return [(adapter.A.detach(), adapter.B.detach()) for adapter in detector.lora]


def reference_embedding(visual: torch.nn.Module, updates: list, scaling: float, images: torch.Tensor) -> torch.Tensor:
    """Eval-mode CLIPModel_lora.encode_image by hand, L2-normalised: CLIP's ViT with each block's q, k, v =
    W x + b + scaling * B A x (peft's LoRA on Hugging Face's q_proj/k_proj/v_proj), class token, ln_post, proj."""
    x = visual.conv1(images).flatten(2).transpose(1, 2)  # [B, P, d]
    x = torch.cat([visual.class_embedding.expand(x.shape[0], 1, -1), x], dim=1) + visual.positional_embedding
    x = visual.ln_pre(x)
    for block, (lora_a, lora_b) in zip(visual.transformer.resblocks, updates):
        attn, h = block.attn, block.ln_1(x)
        width, heads = x.shape[-1], attn.num_heads
        q, k, v = (
            F.linear(h, attn.in_proj_weight[j * width:(j + 1) * width], attn.in_proj_bias[j * width:(j + 1) * width])
            + scaling * (h @ lora_a[j].t()) @ lora_b[j].t()
            for j in range(3)
        )
        split = lambda t: t.unflatten(-1, (heads, -1)).transpose(1, 2)  # noqa: E731 - [B, heads, L, d/heads]
        weights = torch.softmax(split(q) @ split(k).transpose(-1, -2) / (width // heads) ** 0.5, dim=-1)
        x = x + attn.out_proj((weights @ split(v)).transpose(1, 2).flatten(2))
        x = x + block.mlp(block.ln_2(x))
    embedding = visual.ln_post(x[:, 0]) @ visual.proj
    return embedding / embedding.norm(dim=-1, keepdim=True)


def reference_logits(visual: torch.nn.Module, updates: list, scaling: float, fc: torch.nn.Linear, images: torch.Tensor) -> torch.Tensor:
    """C2P_CLIP.forward: fc on the normalised embedding."""
    return F.linear(reference_embedding(visual, updates, scaling, images), fc.weight, fc.bias).squeeze(1)


def randomised(overrides: tuple[str, ...] = ()) -> C2PCLIP:
    """A tiny detector whose LoRA B is not zero (peft starts it at zero, which would hide the adapters)."""
    detector = build_tiny("c2pclip", list(overrides)).eval()
    with torch.no_grad():
        for parameter in detector.parameters():
            parameter.normal_(0.0, 0.3)
    return detector


def test_one_forward_equals_the_reference_and_the_reference_sees_every_adapter_in_order() -> None:
    torch.manual_seed(0)
    detector = randomised()
    images = torch.randn(3, 3, 32, 32)
    visual, updates, scaling = open_clip_twin(detector).visual, lora_updates(detector), detector.lora[0].scaling
    with torch.no_grad():
        expected = reference_logits(visual, updates, scaling, detector.fc, images)
        assert len(updates) == 3 and torch.allclose(detector(images), expected, rtol=1e-4, atol=1e-4)
        # the comparison can fail: adapters reordered, one skipped, or q and k swapped change the logits
        for broken in (updates[::-1], [updates[0], (updates[1][0], torch.zeros_like(updates[1][1])), updates[2]],
                       [(a[[1, 0, 2]], b[[1, 0, 2]]) for a, b in updates]):
            assert not torch.allclose(reference_logits(visual, broken, scaling, detector.fc, images), expected, rtol=0.01, atol=0.01)


def test_at_init_the_adapters_are_zero_and_the_detector_reads_the_frozen_tower() -> None:
    torch.manual_seed(0)
    detector = build_tiny("c2pclip").eval()
    assert all(torch.equal(adapter.B, torch.zeros_like(adapter.B)) for adapter in detector.lora)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        frozen = F.normalize(open_clip_twin(detector).encode_image(images), dim=-1)
        assert torch.allclose(detector.embed(images), frozen, atol=1e-5)


def test_lora_is_scale_times_b_a_x_with_one_dropout_mask_per_projection() -> None:
    torch.manual_seed(0)
    lora = QKVLoRA(width=8, rank=2, alpha=6.0, dropout=0.5)
    with torch.no_grad():
        lora.B.normal_()
        lora.A[1:] = lora.A[0]  # q, k and v alike: only their dropout masks can tell them apart
        lora.B[1:] = lora.B[0]
    x = torch.randn(4, 5, 8)
    expected = 3.0 * (x @ lora.A[0].t()) @ lora.B[0].t()
    with torch.no_grad():
        q, k, v = lora.eval()(x).chunk(3, dim=-1)
        assert torch.allclose(q, expected, atol=1e-5) and torch.equal(q, k) and torch.equal(k, v)
        q, k, v = lora.train()(x).chunk(3, dim=-1)
        assert not torch.equal(q, k) and not torch.equal(k, v)


def test_the_loss_is_the_authors_summed_group_contrastive_plus_weighted_bce() -> None:
    torch.manual_seed(0)
    detector = randomised(("params.contrastive_groups=2", "params.classification_weight=3"))
    images, labels = torch.randn(6, 3, 32, 32), torch.tensor([0, 1, 1, 0, 1, 0])
    clip = open_clip_twin(detector)
    tokens = open_clip.get_tokenizer("mb-tiny-clip")(["Camera.  Camera.", "Deepfake.  Deepfake."])  # real, fake
    with torch.no_grad():
        loss, stats = detector.training_loss(images, labels)
        texts = F.normalize(clip.encode_text(tokens), dim=-1)[labels]
        image = reference_embedding(clip.visual, lora_updates(detector), detector.lora[0].scaling, images)
        logits = F.linear(image, detector.fc.weight, detector.fc.bias).squeeze(1)
    # nn.DataParallel on 2 devices: each replica's [3, 3] logits_per_image, symmetric CE, the losses summed
    contrastive = 0.0
    for part in (slice(0, 3), slice(3, 6)):
        per_image = clip.logit_scale.exp() * image[part] @ texts[part].t()
        target = torch.arange(3)
        contrastive += (F.cross_entropy(per_image, target) + F.cross_entropy(per_image.t(), target)) / 2
    bce = F.binary_cross_entropy_with_logits(logits, labels.float())
    assert stats["contrastive"] == pytest.approx(float(contrastive), rel=1e-4)
    assert stats["bce"] == pytest.approx(float(bce), rel=1e-4)
    assert loss.item() == pytest.approx(float(contrastive + 3 * bce), rel=1e-4)


def test_the_paper_model_has_the_885505_trainable_parameters_of_the_authors_code() -> None:
    card = load_recipe("c2pclip")
    assert (card.backbone.name, card.backbone.pretrained) == ("ViT-L-14-quickgelu", "openai")
    # networks/trainer.py: peft LoRA r 6 on q_proj, k_proj, v_proj (1024 -> 1024) of 24 blocks, fc Linear(768, 1)
    assert count_trainable(card) == 24 * 3 * (6 * 1024 + 1024 * 6) + 768 + 1 == 885_505


def test_checkpoints_scored_together_keep_their_own_adapters_on_a_shared_tower() -> None:
    torch.manual_seed(0)
    first, second = randomised(), randomised()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        before = first(images), second(images)
        assert not torch.allclose(*before)
        second.hold_frozen("encoder", first.encoder)  # what adopt_frozen does for checkpoints scored together
        assert torch.equal(first(images), before[0]) and torch.equal(second(images), before[1])
    with pytest.raises(ContractError, match="LoRA attention ran without its adapter"):
        first.encoder(images)


def test_only_the_adapters_and_head_train_and_training_on_a_tiny_tree_lowers_the_loss(tmp_path: Path) -> None:
    torch.manual_seed(0)
    detector = build_tiny("c2pclip", ["params.lora_dropout=0"])  # a random tiny tower: no dropout noise on top
    assert {n.split(".")[0] for n, _ in detector.trainable_parameters()} == {"lora", "fc"}
    frozen = {k: v.clone() for k, v in detector.encoder.state_dict().items()}
    generator = torch.Generator().manual_seed(0)
    items = _tiny_tree(tmp_path)
    images = torch.stack([train_transform(Image.open(p).convert("RGB"), detector.input_spec, generator) for p, _ in items])
    labels = torch.tensor([label for _, label in items])
    optimiser = torch.optim.Adam([p for _, p in detector.trainable_parameters()], lr=1e-2)

    def scored_loss() -> float:  # in eval mode, as scoring runs: no dropout
        with torch.no_grad():
            return detector.eval().training_loss(images, labels)[0].item()

    before = scored_loss()
    detector.train()
    for _ in range(20):
        loss, stats = detector.training_loss(images, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert stats.keys() == {"loss", "bce", "contrastive"}
    assert scored_loss() < 0.8 * before
    assert all(torch.equal(frozen[k], v) for k, v in detector.encoder.state_dict().items())
