"""CNNSpot (Wang et al., CVPR 2020): an ImageNet ResNet-50 fine-tuned end to end with one fake logit.

All weights train; the recipe's strength is its augmentation (blur and JPEG, applied by the engine from
``train.augment``), not the architecture. The backbone comes from
:func:`mirage_bench.detectors.infra.timm_backbone.load_timm_classifier`, so its identity (tag, file sha256 or
random initialisation) is recorded in every checkpoint.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from mirage_bench.config import RecipeCard
from mirage_bench.detectors.base import Detector, required_backbone
from mirage_bench.detectors.infra.timm_backbone import load_timm_classifier


class CNNSpot(Detector):
    """A timm classifier (``backbone.name``) whose 1000-way head is replaced by one fake logit."""

    tiny_overrides = (
        "backbone.name=mb-tiny-resnet",
        "backbone.pretrained=none",
        "input.size=32",
        "input.resize=null",
        "train.batch_size=4",
    )

    def __init__(self, recipe: RecipeCard) -> None:
        super().__init__(recipe)
        self.net, self._identity = load_timm_classifier(required_backbone(recipe, "{name: resnet50.tv_in1k, pretrained: imagenet}"))

    def forward(self, images: Tensor) -> Tensor:
        return self.check_output(images, self.net(images).squeeze(1).float())

    backbone_in_state = True  # all weights train: a checkpoint needs no ImageNet download to load

    def backbone_identity(self) -> dict[str, Any]:
        return dict(self._identity)

    def restore_identity(self, identity: dict[str, Any]) -> None:
        self._identity = dict(identity)
