"""Each published card, fed a state dict with the authors' key names and shapes (built as the authors' model code
builds it, random values), loads strictly and scores exactly as the authors' model with those weights."""

from __future__ import annotations

from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from mirage_bench.zoo.card import load_published
from mirage_bench.zoo.load import load_published_detector

from zoo_helpers import TINY_768, TINY_CLIP, save


def randomise_batch_norms(model: nn.Module, seed: int = 0) -> nn.Module:
    """Running statistics away from (0, 1), so that a mis-mapped BN buffer changes the logits."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


@pytest.mark.slow  # a full ResNet-50 built twice and run once: about 8 s on a 2-core box
def test_cnndetection_file_scores_as_the_authors_resnet50(tmp_path: Path) -> None:
    card_name = "cnnspot-wang2020-p05"  # p01 is the same file format and key map (test_cards)
    torch.manual_seed(0)
    authors = randomise_batch_norms(torchvision.models.resnet50(num_classes=1))  # networks/resnet.py: torchvision's
    file = save({"model": authors.state_dict(), "optimizer": {}, "total_steps": 7}, tmp_path / "blur_jpg.pth")
    detector = load_published_detector(load_published(card_name), weights=file)
    assert not detector.random_backbone and detector.backbone_identity()["pretrained"] == f"published:{card_name}"
    images = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(detector(images), authors(images).squeeze(1), atol=1e-5)


class AuthorsNPR(nn.Module):
    """NPR as networks/resnet.py (73cde1c) builds it: conv1 3x3/2 on (x - nearest up of nearest down) * 2/3, bn1,
    ReLU, max-pool 3/2, ResNet-50's layer1 and layer2 (Bottleneck 3 + 4), average pool, fc1 = Linear(512, 1)."""

    def __init__(self) -> None:
        super().__init__()
        resnet = torchvision.models.resnet50()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1, self.layer1, self.layer2 = resnet.bn1, resnet.layer1, resnet.layer2
        self.fc1 = nn.Linear(512, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        down = F.interpolate(x, scale_factor=0.5, mode="nearest", recompute_scale_factor=True)
        npr = x - F.interpolate(down, scale_factor=2.0, mode="nearest", recompute_scale_factor=True)
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(npr * 2.0 / 3.0))), kernel_size=3, stride=2, padding=1)
        return self.fc1(self.layer2(self.layer1(x)).mean(dim=(2, 3)))


def test_npr_file_scores_as_the_authors_network(tmp_path: Path) -> None:
    card_name = "npr-tan2024"  # the GenImage checkpoint has the same key map (test_cards)
    torch.manual_seed(1)
    authors = randomise_batch_norms(AuthorsNPR())
    state = authors.state_dict()
    assert "fc1.weight" in state and not any(k.startswith(("layer3", "fc.")) for k in state)
    detector = load_published_detector(load_published(card_name), weights=save(state, tmp_path / "NPR.pth"))
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(detector(images), authors(images).squeeze(1), atol=1e-5)


def authors_coop_logits(clip: nn.Module, ctx: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """trainers/coop.py with class_token_position 'front': [SOS][class][ctx]['.' EOT ...] cut from the embedding of
    'X X ... X {class}.', through CLIP's text transformer, pooled at the EOT token; cosine logits scaled."""
    n_ctx = ctx.shape[0]
    tokens = open_clip.get_tokenizer(TINY_768)([" ".join(["X"] * n_ctx) + f" {name}." for name in ("real", "fake")])
    embedding = clip.token_embedding(tokens)
    prefix, suffix = embedding[:, :1], embedding[:, 1 + n_ctx:]
    prompts = torch.cat([prefix, suffix[:, :1], ctx.expand(2, -1, -1), suffix[:, 1:]], dim=1)  # class names: 1 token
    x = clip.ln_final(clip.transformer(prompts + clip.positional_embedding, attn_mask=clip.attn_mask))
    text = x[torch.arange(2), tokens.argmax(dim=-1)] @ clip.text_projection
    image = clip.encode_image(images)
    logits = clip.logit_scale.exp() * F.normalize(image, dim=-1) @ F.normalize(text, dim=-1).T
    return logits[:, 1] - logits[:, 0]


def test_clipping_prompt_file_scores_as_the_authors_coop(tmp_path: Path) -> None:
    torch.manual_seed(2)
    card = load_published("coop-khan2024")
    width = open_clip.get_model_config(TINY_768)["text_cfg"]["width"]
    ctx = torch.randn(16, width) * 0.02
    state = {"ctx": ctx.half(), "token_prefix": torch.zeros(2, 1, width).half(), "token_suffix": torch.zeros(2, 60, width).half()}
    file = save({"state_dict": state, "epoch": 2, "optimizer": {}}, tmp_path / "model.pth.tar-2")
    detector = load_published_detector(card, weights=file, overrides=TINY_CLIP)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = authors_coop_logits(detector.clip, ctx.half().float(), images)
        assert torch.allclose(detector(images), expected, atol=1e-4)
