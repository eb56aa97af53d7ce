"""ClipBased: one linear layer on the L2-normalised, unprojected pooled token of a frozen CLIP; one forward against
open_clip's own tower as the authors' OpenClipLinear uses it (grip-unina/ClipBased-SyntheticImageDetection@3247cae)."""

from __future__ import annotations

import copy

import open_clip
import torch
import torch.nn.functional as F

from mirage_bench.cards import load_recipe
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.infra.inspect import count_trainable


def authors_logits(visual: torch.nn.Module, fc: torch.nn.Linear, images: torch.Tensor) -> torch.Tensor:
    """OpenClipLinear(next_to_last=True): visual.proj = None, encode_image(normalize=True), then the linear layer."""
    visual = copy.deepcopy(visual)
    visual.proj = None
    return F.linear(F.normalize(visual(images), dim=-1), fc.weight, fc.bias).squeeze(1)


def test_one_forward_equals_open_clips_tower_without_projection_then_the_linear_layer() -> None:
    torch.manual_seed(0)
    detector = build_tiny("clipbased").eval()
    with torch.no_grad():
        detector.fc.weight.normal_(0.0, 1.0)
    clip = open_clip.create_model("mb-tiny-clip", pretrained=None)  # open_clip's own blocks, not our swapped ones
    missing = clip.visual.load_state_dict(detector.encoder.state_dict(), strict=False)
    assert missing.missing_keys == ["proj"] and not missing.unexpected_keys  # ours dropped the projection
    visual = clip.visual.eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        expected = authors_logits(visual, detector.fc, images)
        assert detector.fc.in_features == 64 and torch.allclose(detector(images), expected, atol=1e-5)
        assert torch.allclose(detector.encode(images).norm(dim=1), torch.ones(3), atol=1e-5)
        # the comparison can fail: a skipped last block changes the logits
        skipped = copy.deepcopy(visual)
        skipped.transformer.resblocks = skipped.transformer.resblocks[:-1]
        assert not torch.allclose(authors_logits(skipped, detector.fc, images), expected, atol=1e-3)


def test_the_paper_model_trains_the_authors_1025_parameters_on_vit_l14_commonpool() -> None:
    card = load_recipe("clipbased")
    assert (card.backbone.name, card.backbone.pretrained) == ("ViT-L-14", "commonpool_xl_s13b_b90k")
    assert count_trainable(card) == 1024 + 1  # ChannelLinear(1024, 1) on the unprojected ViT-L/14 token
    assert count_trainable(load_recipe("clipbased", ["params.next_to_last=false"])) == 768 + 1
    assert card.input.resize == 224 and card.input.interpolation == "bicubic" and card.input.eval_crop == "center"


def test_training_lowers_the_loss() -> None:
    torch.manual_seed(0)
    detector = build_tiny("clipbased")
    images, labels = torch.randn(8, 3, 32, 32), torch.tensor([0, 1] * 4)
    features = detector.encode(images)
    detector.encode = lambda _images: features  # the tower is frozen: encode once
    optimiser = torch.optim.Adam(detector.parameters(), lr=0.1)
    before = detector.training_loss(images, labels)[0].item()
    for _ in range(50):
        loss, _ = detector.training_loss(images, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert [n for n, _ in detector.trainable_parameters()] == ["fc.weight", "fc.bias"]
    assert detector.training_loss(images, labels)[0].item() < 0.5 * before


def test_the_readout_is_part_of_the_identity_so_cached_features_never_mix_with_univfds() -> None:
    from mirage_bench.features.encode import feature_keys

    ours, univfd = build_tiny("clipbased"), build_tiny("univfd")
    univfd.encoder.load_state_dict(ours.encoder.state_dict(), strict=False)  # same tower weights (ours lacks proj)
    ours.encoder.proj = univfd.encoder.proj  # and the same fingerprinted modules: only the readout differs
    ours_key, univfd_key = feature_keys(ours, ["0" * 64])[0], feature_keys(univfd, ["0" * 64])[0]
    assert ours_key.backbone != univfd_key.backbone
