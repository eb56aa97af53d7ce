"""CNNSpot: weights load or fail loudly, a local file is identified by sha256, the card holds the recipe."""

from __future__ import annotations

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from mirage_bench.cards import load_recipe
from mirage_bench.detectors.infra.build import build_detector, build_tiny
from mirage_bench.detectors.infra.checkpoint import sha256_file
from mirage_bench.detectors.infra.inspect import count_trainable
from mirage_bench.detectors.infra.timm_backbone import LOCAL_ARCHITECTURES
from mirage_bench.errors import WeightsError

TINY = ("backbone.name=mb-tiny-resnet", "input.size=32", "input.resize=null")


@pytest.fixture
def offline(monkeypatch):
    """timm's download fails as it does without internet access (and no test ever downloads)."""
    import timm

    real = timm.create_model

    def create(name, pretrained=False, **kwargs):
        if pretrained:
            raise OSError("Network is unreachable")
        return real(name, pretrained=False, **kwargs)

    monkeypatch.setattr(timm, "create_model", create)


def test_card_holds_the_paper_recipe() -> None:
    card, p01 = load_recipe("cnnspot"), load_recipe("cnnspot-p01")
    assert (card.backbone.name, card.backbone.pretrained, card.backbone.require_pretrained) == ("resnet50.tv_in1k", "imagenet", True)
    assert card.train.augment == ["cnnspot(p=0.5)"] and p01.train.augment == ["cnnspot(p=0.1)"]
    assert (card.train.schedule.kind, card.train.schedule.plateau_factor, card.train.schedule.min_lr) == ("plateau", 0.1, 1e-6)
    assert (card.input.resize, card.input.size, card.train.lr, card.train.batch_size) == (256, 224, 1e-4, 64)
    assert p01.variant_of == "cnnspot" and p01.backbone == card.backbone


def test_all_resnet50_weights_train_with_one_logit() -> None:
    with torch.device("meta"):
        reference = torchvision.models.resnet50()
    without_fc = sum(p.numel() for n, p in reference.named_parameters() if not n.startswith("fc."))
    assert count_trainable(load_recipe("cnnspot")) == without_fc + 2048 + 1


def test_failed_download_is_a_weights_error_with_advice(offline) -> None:
    with pytest.raises(WeightsError, match="backbone.pretrained=none"):
        build_detector(load_recipe("cnnspot", ["input.size=32"]))


def test_failed_download_falls_back_to_recorded_random_only_when_allowed(offline) -> None:
    with pytest.warns(UserWarning, match="RANDOM"):
        detector = build_detector(load_recipe("cnnspot", ["backbone.require_pretrained=false", "backbone.name=resnet18"]))
    assert detector.backbone_identity()["random"] is True and detector.random_backbone


def test_pretrained_none_is_recorded_as_random() -> None:
    detector = build_tiny("cnnspot")
    assert detector.backbone_identity() == {"name": "mb-tiny-resnet", "pretrained": "none", "sha256": None, "random": True}


def test_local_weights_file_loads_strictly_and_is_identified_by_sha256(tmp_path) -> None:
    source = LOCAL_ARCHITECTURES["mb-tiny-resnet"](1000)
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    detector = build_detector(load_recipe("cnnspot", [*TINY, f"backbone.pretrained={path}"]))
    assert detector.backbone_identity() == {"name": "mb-tiny-resnet", "pretrained": str(path), "sha256": sha256_file(path), "random": False}
    loaded = detector.net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items() if not k.startswith("fc."))
    assert detector.net.fc.out_features == 1

    state = source.state_dict()
    state.pop("layer1.0.conv1.weight")
    broken = tmp_path / "broken.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(broken))
    with pytest.raises(WeightsError, match="layer1.0.conv1.weight"):
        build_detector(load_recipe("cnnspot", [*TINY, f"backbone.pretrained={broken}"]))


def test_missing_file_and_unknown_architecture_are_weights_errors(tmp_path) -> None:
    with pytest.raises(WeightsError, match="does not exist"):
        build_detector(load_recipe("cnnspot", [*TINY, f"backbone.pretrained={tmp_path / 'none.pt'}"]))
    with pytest.raises(WeightsError, match="Did you mean"):
        build_detector(load_recipe("cnnspot", ["backbone.name=resnet5O", "backbone.pretrained=none"]))
