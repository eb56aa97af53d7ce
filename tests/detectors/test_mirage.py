"""MiraGe (reconstruction; its cards pass the conformance suite in test_contract.py): frozen CLIP, gradients, ablations, learning, checkpoints, size."""

from __future__ import annotations

import pytest
import torch

from mirage_bench.cards import load_recipe
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.infra.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from mirage_bench.detectors.infra.inspect import count_trainable
from mirage_bench.detectors.clip.prompt_learner import tokenizer_for
from mirage_bench.errors import CheckpointError

VARIANTS = {"mirage-text-only": "vision_prompts", "mirage-no-disc": "disc_loss", "mirage-no-bank": "memory_bank"}


def tiny(card: str = "mirage", *overrides: str):
    torch.manual_seed(0)
    return build_tiny(card, ["params.depth=3", *overrides])


def test_frozen_clip_is_bit_identical_after_training_while_prompts_change():
    detector = tiny()
    clip_before = {k: v.clone() for k, v in detector.clip.state_dict().items()}
    prompts_before = {k: v.clone() for k, v in detector.state_dict().items()}
    optimiser = torch.optim.SGD([p for _, p in detector.trainable_parameters()], lr=0.5, momentum=0.9)
    detector.train()
    for step in range(3):
        loss, _ = detector.training_loss(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]), torch.arange(4) + 4 * step)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert all(torch.equal(v, clip_before[k]) for k, v in detector.clip.state_dict().items())
    assert not detector.clip.training and not any(p.requires_grad for p in detector.clip.parameters())
    changed = {k for k, v in detector.state_dict().items() if not torch.equal(v, prompts_before[k])}
    assert changed == set(prompts_before), f"unchanged: {sorted(set(prompts_before) - changed)}"
    assert not any(k.startswith("clip.") for k in detector.state_dict())


def test_gradients_reach_the_prompts_at_every_depth_below_j():
    detector = tiny()
    detector.train()
    loss, _ = detector.training_loss(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]), torch.arange(4))
    loss.backward()
    for layer in range(3):
        for name, param in [
            (f"text_prompts.{layer}", detector.prompts.text_prompts[layer]),
            (f"vision_proj.{layer}.weight", detector.prompts.vision_proj[layer].weight),
        ]:
            assert param.grad is not None and param.grad.abs().sum() > 0, f"no gradient at {name}"


def test_gradients_also_reach_the_layer0_vision_prompt_with_checkpointing():
    detector = tiny("mirage", "params.checkpointing=true")
    detector.train()
    loss, _ = detector.training_loss(torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]), torch.arange(4))
    loss.backward()
    assert detector.prompts.vision_proj[0].weight.grad.abs().sum() > 0


def test_text_only_variant_has_no_vision_prompts():
    detector = tiny("mirage-text-only")
    assert len(detector.prompts.vision_proj) == 0 and detector.prompts.vision_prompt_list() == []
    assert not any("vision" in name for name in detector.state_dict())


@pytest.mark.parametrize("card, key", sorted(VARIANTS.items()))
def test_each_variant_differs_from_the_full_card_only_in_its_switch(card, key):
    full, variant = load_recipe("mirage").model_dump(), load_recipe(card).model_dump()
    assert {k for k in full if full[k] != variant[k]} == {"name", "description", "variant_of", "source", "params"}
    assert variant["variant_of"] == "mirage"
    assert {k for k in full["params"] if full["params"][k] != variant["params"][k]} == {key}
    assert full["params"][key] is True and variant["params"][key] is False


def test_variants_build_the_same_prompts_except_what_they_switch_off():
    full, no_disc, no_bank, text_only = (tiny(c) for c in ("mirage", "mirage-no-disc", "mirage-no-bank", "mirage-text-only"))
    state = full.state_dict()
    for other in (no_disc, no_bank):
        assert other.state_dict().keys() == state.keys()
        assert all(torch.equal(v, state[k]) for k, v in other.state_dict().items())
    assert set(text_only.state_dict()) == {k for k in state if not k.startswith("prompts.vision_proj")}
    assert full.bank is not None and no_bank.bank is None and no_disc.bank is None
    images, labels, ids = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 0, 1]), torch.arange(4)
    for d in (full, no_disc, no_bank):
        d.train()
    _, s_full = full.training_loss(images, labels, ids)  # empty bank: equals the no-bank loss
    _, s_no_disc = no_disc.training_loss(images, labels, ids)
    _, s_no_bank = no_bank.training_loss(images, labels, ids)
    assert s_no_disc["loss"] == pytest.approx(s_full["loss_cls"]) and "loss_disc" not in s_no_disc
    assert s_no_bank["loss"] == pytest.approx(s_full["loss"])
    _, s_full2 = full.training_loss(images, labels, ids + 4)  # now the bank holds the first batch
    _, s_no_bank2 = no_bank.training_loss(images, labels, ids + 4)
    assert s_full2["loss_disc"] != pytest.approx(s_no_bank2["loss_disc"])


def separable_batch(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(n) % 2
    images = torch.randn(n, 3, 32, 32, generator=generator) * 0.3
    images[labels == 1, 0] += 1.5  # fake images: a strong red channel
    images[labels == 1, 2] -= 1.5
    return images, labels


def test_a_few_steps_on_a_separable_problem_lower_the_loss_and_beat_chance():
    detector = tiny("mirage", "params.bank_size=32")
    generator = torch.Generator().manual_seed(1)
    test_images, test_labels = separable_batch(32, generator)

    def accuracy() -> float:
        detector.eval()
        with torch.no_grad():
            return ((detector(test_images) > 0).long() == test_labels).float().mean().item()

    before = accuracy()
    optimiser = torch.optim.Adam([p for _, p in detector.trainable_parameters()], lr=0.02)
    losses = []
    for step in range(6):
        images, labels = separable_batch(8, generator)
        detector.train()
        loss, _ = detector.training_loss(images, labels, torch.arange(8) + 8 * step)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert sum(losses[-2:]) / 2 < losses[0]
    assert before <= 0.6 and accuracy() >= 0.8


def test_checkpoint_round_trips_exactly_and_another_backbone_is_refused(tmp_path):
    detector = tiny()
    with torch.no_grad():
        detector.prompts.text_prompts[1].add_(1.0)  # a state that differs from a fresh build
    images = torch.randn(2, 3, 32, 32)
    path = tmp_path / "mirage.ckpt"
    save_checkpoint(detector, path)
    restored, _ = load_checkpoint(path)
    detector.eval()
    with torch.no_grad():
        assert torch.equal(detector(images), restored(images))
    payload = read_checkpoint(path)
    assert not any(k.startswith("clip") or k.startswith("bank") for k in payload["state"])
    payload["backbone"]["name"] = "ViT-B-16-quickgelu"
    foreign = tmp_path / "foreign.ckpt"
    torch.save(payload, foreign)
    with pytest.raises(CheckpointError, match="another backbone.*ViT-B-16-quickgelu.*mb-tiny-clip"):
        load_checkpoint(foreign)


def expected_count(n_ctx: int, depth: int, text_width: int, vision_width: int, vision: bool) -> int:
    """MaPLe's parameters, written independently: J text prompts [n_ctx, Dt], J Linear(Dt -> Dv)."""
    return depth * n_ctx * text_width + (depth * (text_width * vision_width + vision_width) if vision else 0)


@pytest.mark.parametrize("card", ["mirage", "mirage-text-only"])
def test_parameter_formula_holds_on_the_tiny_config(card):
    detector = tiny(card)
    widths = detector.clip.transformer.width, detector.clip.visual.transformer.width
    assert widths == (48, 64)
    assert detector.num_trainable() == expected_count(2, 3, 48, 64, card == "mirage")
    assert count_trainable(detector.recipe) == detector.num_trainable()  # the meta-device count agrees


def test_vit_l14_defaults_give_7100928_trainable_parameters_on_the_meta_device():
    assert expected_count(2, 9, 768, 1024, True) == 7_100_928
    assert count_trainable(load_recipe("mirage")) == 7_100_928


def test_maple_layout_with_plain_context_equals_encode_text():
    detector = tiny("mirage", "params.depth=1", "params.vision_prompts=false")
    tokens = tokenizer_for("mb-tiny-clip")(["a photo of a real.", "a photo of a fake."])
    assert torch.equal(detector.prompts.token_ids, tokens)
    assert detector.prompts.ctx_index.tolist() == [[1, 2], [1, 2]]
    with torch.no_grad():
        _, anchors = detector.features(torch.randn(1, 3, 32, 32))
        expected = torch.nn.functional.normalize(detector.clip.encode_text(tokens).float(), dim=-1)
    assert torch.equal(anchors, expected)
