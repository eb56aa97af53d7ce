"""RINE: per-block class tokens of a frozen CLIP, weighted by a trainable importance estimator; one forward against a
reference written here from the paper and the authors' src/models.py (mever-team/rine@325a1c9)."""

from __future__ import annotations

import open_clip
import pytest
import torch
import torch.nn.functional as F

from mirage_bench.cards import load_recipe
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.infra.inspect import count_trainable


def reference_block_tokens(visual: torch.nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """The class token after each block's ln_2 (where the authors hook), from open_clip's ViT weights by hand:
    patches + class embedding + positions, ln_pre, then per block x += attn(ln_1 x); record ln_2(x)[cls]; x += mlp(ln_2 x)."""
    x = visual.conv1(images).flatten(2).transpose(1, 2)  # [B, P, d]
    cls = visual.class_embedding.expand(x.shape[0], 1, -1)
    x = visual.ln_pre(torch.cat([cls, x], dim=1) + visual.positional_embedding)
    tokens = []
    for block in visual.transformer.resblocks:
        attn = block.attn
        h = block.ln_1(x)
        q, k, v = F.linear(h, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        heads = attn.num_heads
        split = lambda t: t.unflatten(-1, (heads, -1)).transpose(1, 2)  # noqa: E731 - [B, heads, L, d/heads]
        weights = torch.softmax(split(q) @ split(k).transpose(-1, -2) / (q.shape[-1] // heads) ** 0.5, dim=-1)
        x = x + attn.out_proj(( weights @ split(v)).transpose(1, 2).flatten(2))
        h = block.ln_2(x)
        tokens.append(h[:, 0])
        x = x + block.mlp(h)
    return tokens


def reference_head(state: dict[str, torch.Tensor], tokens: list[torch.Tensor], nproj: int) -> torch.Tensor:
    """Eval-mode RINE from its state dict: proj1 per block (Linear+ReLU, nproj times), softmax(alpha) over the
    blocks, sum over blocks, proj2 likewise, head Linear+ReLU, Linear+ReLU, Linear -> logit."""
    def mlp(x: torch.Tensor, prefix: str) -> torch.Tensor:
        for i in range(nproj):
            x = F.relu(F.linear(x, state[f"{prefix}.{3 * i + 1}.weight"], state[f"{prefix}.{3 * i + 1}.bias"]))
        return x

    g = torch.stack([mlp(t, "proj1") for t in tokens], dim=1)  # [B, n, q]
    z = mlp((torch.softmax(state["alpha"], dim=1) * g).sum(dim=1), "proj2")
    for i in (0, 3):
        z = F.relu(F.linear(z, state[f"head.{i}.weight"], state[f"head.{i}.bias"]))
    return F.linear(z, state["head.6.weight"], state["head.6.bias"]).squeeze(1)


def authors_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.replace("classifier.", "head.", 1): v for k, v in state.items()}


def test_one_forward_equals_the_reference_and_the_reference_sees_block_order() -> None:
    torch.manual_seed(0)
    detector = build_tiny("rine").eval()
    with torch.no_grad():  # wider than PyTorch's init, so that every block's token moves the logit visibly
        for parameter in detector.parameters():
            parameter.normal_(0.0, 0.3)
    clip = open_clip.create_model("mb-tiny-clip", pretrained=None)  # open_clip's own modules, not our swapped attention
    clip.visual.load_state_dict(detector.encoder.state_dict())
    images = torch.randn(3, 3, 32, 32)
    state = authors_names(detector.state_dict())
    with torch.no_grad():
        tokens = reference_block_tokens(clip.visual.eval(), images)
        expected = reference_head(state, tokens, detector.params.nproj)
        assert len(tokens) == 3 and torch.allclose(detector(images), expected, rtol=1e-4, atol=1e-4)
        assert torch.allclose(detector.encode(images), torch.stack(tokens, dim=1), atol=1e-5)
        # the comparison can fail: a skipped, reordered or block-output (not ln_2) token changes the logits
        assert not torch.allclose(reference_head(state, tokens[::-1], detector.params.nproj), expected, rtol=0.01, atol=0.01)
        assert not torch.allclose(reference_head(state, [tokens[0], tokens[0], tokens[2]], detector.params.nproj), expected, rtol=0.01, atol=0.01)


def test_the_paper_model_has_the_authors_283009_trainable_parameters() -> None:
    card = load_recipe("rine")
    assert (card.backbone.name, card.backbone.pretrained) == ("ViT-L-14-quickgelu", "openai")
    # scripts/results.py plot_hyperparams_vs_model_size: (nproj 4, proj_dim 128) -> 283009; the 2-class file's size
    assert count_trainable(card) == 283_009
    assert count_trainable(load_recipe("rine", ["params.nproj=2", "params.proj_dim=1024"])) == 6_323_201


def test_only_the_head_trains_and_training_lowers_the_loss() -> None:
    torch.manual_seed(0)
    detector = build_tiny("rine", ["params.dropout=0"])  # random tiny CLIP tokens differ little: no dropout noise on top
    assert {n.split(".")[0] for n, _ in detector.trainable_parameters()} == {"alpha", "proj1", "proj2", "classifier"}
    assert not any(p.requires_grad for p in detector.encoder.parameters())
    images, labels = torch.randn(8, 3, 32, 32), torch.tensor([0, 1] * 4)
    optimiser = torch.optim.Adam(detector.parameters(), lr=1e-2)
    features = detector.encode(images)
    detector.encode = lambda _images: features  # the tower is frozen: encode once (a CPU forward costs ~0.5 s here)

    def eval_loss() -> float:
        detector.eval()
        with torch.no_grad():
            return detector.training_loss(images, labels)[0].item()

    before = eval_loss()
    for _ in range(60):
        detector.train()
        loss, stats = detector.training_loss(images, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert stats.keys() == {"loss", "bce", "contrastive"}
    assert eval_loss() < 0.5 * before


@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_the_loss_is_summed_bce_plus_factor_times_supcon(reduction: str) -> None:
    detector = build_tiny("rine", [f"params.bce_reduction={reduction}", "params.contrastive_factor=0.5"]).eval()
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        loss, stats = detector.training_loss(images, labels)
        logits = detector(images)
    bce = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction=reduction)
    assert stats["bce"] == pytest.approx(bce.item(), rel=1e-5)
    assert loss.item() == pytest.approx(bce.item() + 0.5 * stats["contrastive"], rel=1e-5)
