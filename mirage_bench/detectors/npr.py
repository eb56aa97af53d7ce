"""NPR (Tan et al., CVPR 2024): a shallow ResNet on the neighbouring-pixel residual, trained from scratch.

Up-sampling layers of generators copy or interpolate neighbouring pixels, so ``r = x - up(down(x))`` with
nearest interpolation (factor 1/2 and 2) exposes their traces: on a nearest-up-sampled image ``r`` is zero.
Any resize before the residual would plant or erase exactly those traces, so none happens: the input spec
keeps native resolution, and odd heights/widths are cropped to even (the last row/column dropped) because
the residual needs 2x2 cells (the original code crashes on odd sizes).

Architecture as in the authors' ``networks/resnet.py``: ``conv1(r * 2/3)`` with a 3x3 stride-2 conv, BN,
ReLU, 3x3 stride-2 max-pool, ResNet-50's ``layer1`` and ``layer2`` only (Bottleneck blocks, 3 and 4),
global average pooling and ``Linear(512, 1)``.
"""

from __future__ import annotations

from typing import Literal

import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from mirage_bench.config import RecipeCard
from mirage_bench.detectors.base import Detector


def crop_even(images: Tensor) -> Tensor:
    """Drop the last row and/or column of odd-sized ``[B, C, H, W]`` images (never a resize)."""
    h, w = images.shape[-2:]
    return images[..., : h - h % 2, : w - w % 2]


def npr_residual(images: Tensor) -> Tensor:
    """``x - up(down(x, 1/2), 2)`` with nearest interpolation both ways, on even-cropped ``images``."""
    images = crop_even(images)
    h, w = images.shape[-2:]
    down = F.interpolate(images, size=(h // 2, w // 2), mode="nearest")  # keeps x[2i, 2j]
    return images - F.interpolate(down, size=(h, w), mode="nearest")


class NPRParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    block: Literal["bottleneck", "basic"] = Field("bottleneck", description="ResNet-50 uses bottleneck blocks")
    depths: tuple[int, int] = Field((3, 4), description="blocks in layer1 and layer2 (ResNet-50: 3, 4)")
    width: int = Field(64, ge=1, description="stem channels; layer1 has width, layer2 2*width planes")
    residual_scale: float = Field(2.0 / 3.0, gt=0, description="the residual is multiplied by this before conv1")


class NPR(Detector):
    """Neighbouring Pixel Relationships: residual -> conv1 (3x3, stride 2) -> layer1, layer2 -> pool -> fc."""

    Params = NPRParams
    tiny_overrides = ("params.block=basic", "params.depths=[1, 1]", "params.width=8", "input.size=32", "train.batch_size=4")

    def __init__(self, recipe: RecipeCard) -> None:
        super().__init__(recipe)
        p = self.params
        block = Bottleneck if p.block == "bottleneck" else BasicBlock
        self.conv1 = nn.Conv2d(3, p.width, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(p.width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1, channels = _make_layer(block, p.width, p.width, p.depths[0], stride=1)
        # The authors' fc reads 512 features: layer2's output of ResNet-50 (128 planes x 4).
        self.layer2, channels = _make_layer(block, channels, 2 * p.width, p.depths[1], stride=2)
        self.fc = nn.Linear(channels, 1)
        for m in self.modules():  # torchvision's (and the authors') ResNet initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, images: Tensor) -> Tensor:
        x = self.conv1(npr_residual(images) * self.params.residual_scale)  # [B, width, H/2, W/2]
        x = self.maxpool(self.relu(self.bn1(x)))
        x = self.layer2(self.layer1(x))  # [B, 2*width*expansion, H/8, W/8]
        return self.check_output(images, self.fc(x.mean(dim=(2, 3))).squeeze(1).float())


def _make_layer(block: type[BasicBlock | Bottleneck], in_channels: int, planes: int, blocks: int, stride: int) -> tuple[nn.Sequential, int]:
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
        )
    layers = [block(in_channels, planes, stride, downsample)]
    layers += [block(out_channels, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers), out_channels
