"""Training augmentations: degradations drawn at random per training image from a ``torch.Generator``.

Recipe cards list them in ``train.augment`` (``cnnspot(p=0.5)`` or a preset name such as
``cnnspot-blur-jpeg-0.5``). ``augment(spec).apply(img, generator)`` degrades one image inside the
detector's ``train_transform``, after its resize and before its crop (as CNNDetection's loader does);
``draw(generator)`` returns the concrete degradation it picked, so runs can record it and tests can check it.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from PIL import Image
from pydantic import Field

from mirage_bench.degradations.base import Chain, Degradation, SpecModel
from mirage_bench.degradations.ops import Blur, Jpeg
from mirage_bench.degradations.spec import read
from mirage_bench.registry import Registry

if TYPE_CHECKING:
    import torch


class Augmentation(SpecModel):
    """A random degradation policy with a canonical spec."""

    @abstractmethod
    def draw(self, generator: "torch.Generator") -> Degradation:
        """The degradation this policy picks for one image."""

    def apply(self, img: Image.Image, generator: "torch.Generator") -> Image.Image:
        return self.draw(generator).apply(img, 0)


AUGMENTATIONS: Registry[type[Augmentation]] = Registry("augmentation")


class CNNSpotAugment(Augmentation):
    """CNNSpot's blur + JPEG augmentation (Wang et al., CVPR 2020, ``data_augment``).

    With probability ``p`` blur with sigma ~ U[0, 3] (the reference Gaussian blur on uint8), then with
    probability ``p`` a JPEG round trip with quality ~ U{30, ..., 100}. The paper picks cv2 or PIL at random
    for the JPEG; opencv is not installed with mirage-bench, so only PIL's encoder is used.
    Every call draws four numbers (blur?, sigma, jpeg?, quality) whatever the outcome, so the generator
    advances the same way for every image.
    """

    kind: ClassVar[str] = "cnnspot"
    SIGMA_MAX: ClassVar[float] = 3.0
    QUALITY: ClassVar[tuple[int, int]] = (30, 100)
    p: float = Field(0.5, ge=0, le=1, description="probability of blur, and separately of JPEG")

    def draw(self, generator: "torch.Generator") -> Degradation:
        import torch

        u = torch.rand(3, generator=generator, dtype=torch.float64)
        quality = int(torch.randint(self.QUALITY[0], self.QUALITY[1] + 1, (1,), generator=generator))
        steps: list[Degradation] = []
        if float(u[0]) < self.p:
            steps.append(Blur(s=self.SIGMA_MAX * float(u[1])))
        if float(u[2]) < self.p:
            steps.append(Jpeg(q=quality))
        return Chain.of(steps)


AUGMENTATIONS.register("cnnspot", CNNSpotAugment)


class CNNSpotValidationAugment(Augmentation):
    """The validation images of CNNDetection's ``get_val_opt``: the training ranges' midpoints, blur sigma 1.5
    with probability ``p``, then a PIL JPEG round trip at quality ``int((30 + 100) / 2)`` = 65 with probability
    ``p`` (the training probabilities are kept). Two numbers drawn per image whatever the outcome."""

    kind: ClassVar[str] = "cnnspot-val"
    p: float = Field(0.5, ge=0, le=1, description="probability of blur, and separately of JPEG")

    def draw(self, generator: "torch.Generator") -> Degradation:
        import torch

        u = torch.rand(2, generator=generator, dtype=torch.float64)
        low, high = CNNSpotAugment.QUALITY
        steps: list[Degradation] = []
        if float(u[0]) < self.p:
            steps.append(Blur(s=CNNSpotAugment.SIGMA_MAX / 2))
        if float(u[1]) < self.p:
            steps.append(Jpeg(q=int((low + high) / 2)))
        return Chain.of(steps)


AUGMENTATIONS.register("cnnspot-val", CNNSpotValidationAugment)


@dataclass(frozen=True)
class AugmentPreset:
    name: str
    spec: str
    citation: str
    notes: str = ""


AUGMENT_PRESETS: Registry[AugmentPreset] = Registry("augmentation preset")
for _p in ("0.5", "0.1"):
    AUGMENT_PRESETS.register(
        f"cnnspot-blur-jpeg-{_p}",
        AugmentPreset(
            f"cnnspot-blur-jpeg-{_p}",
            f"cnnspot(p={_p})",
            "Wang et al., CNN-generated images are surprisingly easy to spot... for now, CVPR 2020",
            f"Blur+JPEG ({_p}): blur sigma U[0,3] with p {_p}, then JPEG q U{{30..100}} with p {_p} (PIL only). "
            "Applied after the detector's resize (256 for CNNSpot) and before its crop, as CNNSpot does.",
        ),
    )


def augment(spec: str) -> Augmentation:
    """``cnnspot(p=0.5)`` or an augmentation preset name -> an object with ``.apply(img, generator)``."""
    if spec in AUGMENT_PRESETS:
        spec = AUGMENT_PRESETS.get(spec).spec
    call = read(spec)
    return AUGMENTATIONS.get(call.name).from_call(call)


class InOrder:
    """Several augmentation policies applied one after the other, as a recipe's ``train.augment`` lists them."""

    def __init__(self, policies: list[Augmentation]) -> None:
        self.policies = policies

    def apply(self, image: Image.Image, generator: "torch.Generator") -> Image.Image:
        for policy in self.policies:
            image = policy.apply(image, generator)
        return image


def training_augmentation(specs: list[str]) -> InOrder | None:
    """A recipe's ``train.augment`` (or ``val_augment``) as one object with ``apply(img, generator)``; None when empty."""
    return InOrder([augment(spec) for spec in specs]) if specs else None

