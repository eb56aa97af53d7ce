"""FreqNet (Tan, Zhao, Wei, Gu, Liu, Wei, AAAI 2024): frequency-space learning inside a small CNN, from scratch.

As the authors' ``networks/freqnet.py`` builds it (chuangchuangtan/FreqNet-DeepfakeDetection@2c6bd02), four stages,
each of them: a high-pass in space (2-D FFT, the centre ``[h/2 +- h/4] x [w/2 +- w/4]`` of the shifted spectrum set to
zero, inverse FFT, real part, ReLU); a 1x1 convolution held as raw ``weight``/``bias`` parameters, then ReLU; in the
first two stages a high-pass across channels (the same along the channel axis); then the frequency convolutional
layer (FCL): 1x1 convolutions on the real and on the imaginary part of the shifted spectrum, inverse FFT, real part,
ReLU. Stages 1-2 work on 64 channels (stage 2 with stride 2), then max-pool and ResNet-50's ``layer1``, stages 3-4
on its 256 channels (stage 4 with stride 2), ``layer2``, global average pool and ``fc1 = Linear(512, 1)``. Parameter
names are the authors', so their state dicts map one to one.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from mirage_bench.config import RecipeCard
from mirage_bench.detectors.base import Detector
from mirage_bench.detectors.npr import _make_layer

SHIFT = (-2, -1)


def high_pass_space(x: Tensor, scale: int) -> Tensor:
    """Zero the centre ``2h/scale x 2w/scale`` of the shifted 2-D spectrum (orthonormal FFT); ReLU of the real part."""
    spectrum = torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=SHIFT)
    h, w = x.shape[-2:]
    keep = torch.ones(h, w, device=x.device)
    keep[h // 2 - h // scale : h // 2 + h // scale, w // 2 - w // scale : w // 2 + w // scale] = 0
    return F.relu(torch.fft.ifft2(torch.fft.ifftshift(spectrum * keep, dim=SHIFT), norm="ortho").real)


def high_pass_channels(x: Tensor, scale: int) -> Tensor:
    """The same high-pass along the channel axis (1-D FFT over channels)."""
    spectrum = torch.fft.fftshift(torch.fft.fft(x, dim=1, norm="ortho"), dim=1)
    c = x.shape[1]
    keep = torch.ones(c, 1, 1, device=x.device)
    keep[c // 2 - c // scale : c // 2 + c // scale] = 0
    return F.relu(torch.fft.ifft(torch.fft.ifftshift(spectrum * keep, dim=1), dim=1, norm="ortho").real)


def frequency_conv(x: Tensor, real_conv: nn.Module, imag_conv: nn.Module) -> Tensor:
    """FCL: separate 1x1 convolutions on the real and imaginary parts of the shifted spectrum, back to space, ReLU."""
    spectrum = torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=SHIFT)
    spectrum = torch.complex(real_conv(spectrum.real), imag_conv(spectrum.imag))
    return F.relu(torch.fft.ifft2(torch.fft.ifftshift(spectrum, dim=SHIFT), norm="ortho").real)


class FreqNetParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    block: Literal["bottleneck", "basic"] = Field("bottleneck", description="ResNet-50's layer1/layer2 use bottleneck blocks")
    depths: tuple[int, int] = Field((3, 4), description="blocks in layer1 and layer2 (ResNet-50: 3, 4)")
    width: int = Field(64, ge=4, description="channels of stages 1-2; layer1 has width, layer2 2*width planes")
    scale: int = Field(4, gt=2, description="high-pass: the centre 2/scale of each axis of the spectrum is removed")


class FreqNet(Detector):
    """High-pass (space, channels) + frequency convolutions around ResNet-50's layer1 and layer2; one fake logit."""

    Params = FreqNetParams
    tiny_overrides = ("params.block=basic", "params.depths=[1, 1]", "params.width=8", "input.size=32",
                      "input.resize=null", "input.eval_square=null", "train.batch_size=4")

    def __init__(self, recipe: RecipeCard) -> None:
        super().__init__(recipe)
        p = self.params
        block = Bottleneck if p.block == "bottleneck" else BasicBlock
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1, wide = _make_layer(block, p.width, p.width, p.depths[0], stride=1)
        self.layer2, channels = _make_layer(block, wide, 2 * p.width, p.depths[1], stride=2)
        for i, (c_in, c_out) in enumerate([(3, p.width), (p.width, p.width), (wide, wide), (wide, wide)], start=1):
            self.register_parameter(f"weight{i}", nn.Parameter(torch.randn(c_out, c_in, 1, 1)))  # the authors' randn
            self.register_parameter(f"bias{i}", nn.Parameter(torch.randn(c_out)))
            setattr(self, f"realconv{i}", nn.Conv2d(c_out, c_out, kernel_size=1, bias=False))
            setattr(self, f"imagconv{i}", nn.Conv2d(c_out, c_out, kernel_size=1, bias=False))
        self.fc1 = nn.Linear(channels, 1)
        for m in self.modules():  # torchvision's ResNet initialisation, as the authors apply it to every Conv2d and BN
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stage(self, x: Tensor, i: int, stride: int, across_channels: bool) -> Tensor:
        """High-pass in space, 1x1 conv ``i`` + ReLU, (high-pass across channels), frequency convolution ``i``."""
        x = high_pass_space(x, self.params.scale)
        x = F.relu(F.conv2d(x, getattr(self, f"weight{i}"), getattr(self, f"bias{i}"), stride=stride))
        if across_channels:
            x = high_pass_channels(x, self.params.scale)
        return frequency_conv(x, getattr(self, f"realconv{i}"), getattr(self, f"imagconv{i}"))

    def forward(self, images: Tensor) -> Tensor:
        x = self._stage(self._stage(images, 1, 1, True), 2, 2, True)
        x = self.layer1(self.maxpool(x))
        x = self._stage(self._stage(x, 3, 1, False), 4, 2, False)
        x = self.layer2(x).mean(dim=(2, 3))  # adaptive average pool to 1x1
        return self.check_output(images, self.fc1(x).squeeze(1).float())
