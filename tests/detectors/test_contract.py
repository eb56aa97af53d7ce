"""The conformance suite over every recipe card, and proof that it catches broken detectors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mirage_bench.cards import card_paths, load_recipe
from mirage_bench.detectors import DETECTORS
from mirage_bench.detectors.base import Detector
from mirage_bench.detectors.infra.conformance import check_detector
from mirage_bench.errors import ContractError


@pytest.mark.parametrize("card", sorted(card_paths("detectors")))
def test_every_card_passes_the_conformance_suite(card):
    check_detector(card)


def test_every_registered_detector_has_a_card():
    used = {load_recipe(name).detector for name in card_paths("detectors")}
    assert set(DETECTORS.names()) <= used, f"detectors without a card: {set(DETECTORS.names()) - used}"


class _WrongShape(Detector):
    def __init__(self, recipe):
        super().__init__(recipe)
        self.head = nn.Linear(3, 1)

    def forward(self, images):
        return self.head(images.mean(dim=(2, 3))).float()  # [B, 1]: breaks the contract


class _FrozenInStateDict(Detector):
    def __init__(self, recipe):
        super().__init__(recipe)
        self.backbone = nn.Linear(3, 3).requires_grad_(False)  # registered: leaks into state_dict
        self.head = nn.Linear(3, 1)

    def forward(self, images):
        return self.head(self.backbone(images.mean(dim=(2, 3)))).squeeze(1).float()


class _NoGradient(Detector):
    def __init__(self, recipe):
        super().__init__(recipe)
        self.head = nn.Linear(3, 1)

    def forward(self, images):
        return self.head(images.mean(dim=(2, 3))).squeeze(1).float().detach().requires_grad_()


class _LeakyFrozen(Detector):
    """Holds its backbone properly but lets a training step change it (e.g. BN statistics in train mode)."""

    def __init__(self, recipe):
        super().__init__(recipe)
        self.hold_frozen("backbone", nn.BatchNorm2d(3))
        self.head = nn.Linear(3, 1)

    def forward(self, images):
        self.backbone.train()  # the bug: a frozen module switched to training mode
        return self.head(self.backbone(images).mean(dim=(2, 3))).squeeze(1).float()


class _ForwardIsNotHeadOfEncode(Detector):
    """Declares a frozen encoder (a frozen projection) but adds an offset outside head(encode(x))."""

    frozen_encoder = True

    def __init__(self, recipe):
        super().__init__(recipe)
        self.hold_frozen("project", nn.Linear(3, 3))
        self.fc = nn.Linear(3, 1)

    def encode(self, images):
        return self.project(images.mean(dim=(2, 3)))

    def head(self, features):
        return self.fc(features).squeeze(1).float()

    def forward(self, images):
        return self.check_output(images, self.head(self.encode(images)) + 1.0)


class _EncoderNotFrozen(_ForwardIsNotHeadOfEncode):
    """Scores head(encode(x)), but its encode() reads a trainable layer: sharing it would be wrong."""

    def __init__(self, recipe):
        Detector.__init__(self, recipe)
        self.project = nn.Linear(3, 3)
        self.fc = nn.Linear(3, 1)

    def forward(self, images):
        return self.check_output(images, self.head(self.encode(images)))


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (_EncoderNotFrozen, r"encode\(\) changes with its trainable parameters"),
        (_ForwardIsNotHeadOfEncode, r"forward\(x\) is not exactly head\(encode\(x\)\)"),
        (_WrongShape, r"fp32 logits of shape \[4\], got \(4, 1\)"),
        (_FrozenInStateDict, r"parameter 'backbone.weight' is frozen but registered"),
        (_NoGradient, "changed none of the trainable parameters"),
        (_LeakyFrozen, "frozen module 'backbone' is in training mode"),
    ],
)
def test_conformance_suite_fails_broken_detectors(cls, message, tmp_path, monkeypatch):
    name = f"broken-{cls.__name__.lower()}"
    monkeypatch.setitem(DETECTORS._objects, name, cls)
    (tmp_path / f"{name}.yaml").write_text(f"detector: {name}\ninput: {{size: 8}}\n")
    with pytest.raises(ContractError, match=message):
        check_detector(name, recipe_dirs=[str(tmp_path)])


def test_reference_detector_output_is_fp32_logits():
    from mirage_bench.detectors.infra.build import build_tiny

    detector = build_tiny("tinycnn").eval()
    logits = detector(torch.randn(3, 3, 16, 16))
    assert logits.shape == (3,) and logits.dtype == torch.float32
    torch.testing.assert_close(detector.p_fake(logits), torch.sigmoid(logits))
