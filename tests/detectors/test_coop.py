"""CoOp (CLIPping the Deception): the shared prompt learner in its CoOp configuration, and the card."""

from __future__ import annotations

import torch

from mirage_bench.cards import load_recipe
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.infra.inspect import count_trainable
from mirage_bench.detectors.clip.prompt_learner import PromptLearner, tokenizer_for


def test_class_token_at_the_front_then_context_and_parity_with_encode_text():
    torch.manual_seed(0)
    detector = build_tiny("coop")  # n_ctx=4
    tokenizer = tokenizer_for("mb-tiny-clip")
    tokens = tokenizer(["real X X X X.", "fake X X X X."])
    assert torch.equal(detector.prompts.token_ids, tokens)
    assert tokens[0, 1].item() == tokenizer.encode("real")[0]
    assert detector.prompts.ctx_index.tolist() == [[2, 3, 4, 5], [2, 3, 4, 5]]
    x_embedding = detector.clip.token_embedding.weight[tokenizer.encode("X")[0]]
    with torch.no_grad():
        detector.prompts.text_prompts[0].copy_(x_embedding.expand(4, -1))  # the plain text "X X X X"
        _, anchors = detector.features(torch.randn(1, 3, 32, 32))
        expected = torch.nn.functional.normalize(detector.clip.encode_text(tokens).float(), dim=-1)
    assert torch.equal(anchors, expected)


def test_coop_and_mirage_share_one_prompt_learner_class():
    torch.manual_seed(0)
    coop, mirage = build_tiny("coop"), build_tiny("mirage")
    assert type(coop.prompts) is PromptLearner and type(mirage.prompts) is PromptLearner
    assert coop.prompts.cfg.depth == 1 and not coop.prompts.cfg.vision_prompts
    assert coop.num_trainable() == 4 * coop.clip.transformer.width  # n_ctx x text width, nothing else


def test_card_holds_the_clipping_recipe():
    recipe = load_recipe("coop")
    assert recipe.backbone.name == "ViT-L-14-quickgelu" and recipe.backbone.pretrained == "openai"
    assert recipe.params["n_ctx"] == 16 and recipe.params["class_position"] == "front" and recipe.params["ctx_init"] is None
    train = recipe.train
    assert (train.optimizer, train.lr, train.batch_size, train.epochs, train.augment) == ("sgd", 0.002, 16, 2, [])
    assert (train.schedule.kind, train.schedule.warmup_epochs, train.schedule.warmup_lr) == ("cosine", 1, 1e-5)
    assert (recipe.input.train_crop, recipe.input.random_resized_scale, recipe.input.resize, recipe.input.eval_crop) == (
        "random-resized", (0.08, 1.0), 224, "center")
    assert count_trainable(recipe) == 16 * 768  # 16 context tokens of CLIP ViT-L/14's 768-wide text tower
