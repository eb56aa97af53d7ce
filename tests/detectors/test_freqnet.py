"""FreqNet (training: tests/detectors/test_baselines_contract.py): one forward against a reference written here from the paper and the authors' networks/freqnet.py
(chuangchuangtan/FreqNet-DeepfakeDetection@2c6bd02): in-place zeroing of the spectrum, as they write it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mirage_bench.cards import load_recipe
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.infra.inspect import count_trainable


def zero_centre_space(x: torch.Tensor) -> torch.Tensor:
    f = torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=[-2, -1]).clone()
    h, w = f.shape[-2:]
    f[:, :, h // 2 - h // 4 : h // 2 + h // 4, w // 2 - w // 4 : w // 2 + w // 4] = 0.0
    return F.relu(torch.real(torch.fft.ifft2(torch.fft.ifftshift(f, dim=[-2, -1]), norm="ortho")))


def zero_centre_channels(x: torch.Tensor) -> torch.Tensor:
    f = torch.fft.fftshift(torch.fft.fft(x, dim=1, norm="ortho"), dim=1).clone()
    c = f.shape[1]
    f[:, c // 2 - c // 4 : c // 2 + c // 4] = 0.0
    return F.relu(torch.real(torch.fft.ifft(torch.fft.ifftshift(f, dim=1), dim=1, norm="ortho")))


def fcl(x: torch.Tensor, real_w: torch.Tensor, imag_w: torch.Tensor) -> torch.Tensor:
    f = torch.fft.fftshift(torch.fft.fft2(x, norm="ortho"), dim=[-2, -1])
    f = torch.complex(F.conv2d(f.real, real_w), F.conv2d(f.imag, imag_w))
    return F.relu(torch.real(torch.fft.ifft2(torch.fft.ifftshift(f, dim=[-2, -1]), norm="ortho")))


def reference(m: torch.nn.Module, x: torch.Tensor, channel_pass: tuple[bool, ...] = (True, True, False, False)) -> torch.Tensor:
    """HFRI/HFRFS (space), 1x1 conv + ReLU, HFRFC (channels, stages 1-2), FCL; maxpool + layer1 after stage 2;
    layer2, mean pool and fc1 after stage 4."""
    strides = (1, 2, 1, 2)
    for i in (1, 2, 3, 4):
        if i == 3:
            x = m.layer1(F.max_pool2d(x, kernel_size=3, stride=2, padding=1))
        x = F.relu(F.conv2d(zero_centre_space(x), getattr(m, f"weight{i}"), getattr(m, f"bias{i}"), stride=strides[i - 1]))
        if channel_pass[i - 1]:
            x = zero_centre_channels(x)
        x = fcl(x, getattr(m, f"realconv{i}").weight, getattr(m, f"imagconv{i}").weight)
    return F.linear(m.layer2(x).mean(dim=(2, 3)), m.fc1.weight, m.fc1.bias).squeeze(1)


def test_one_forward_equals_the_reference_and_the_reference_sees_every_block() -> None:
    torch.manual_seed(0)
    detector = build_tiny("freqnet").eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected = reference(detector, images)
        assert torch.allclose(detector(images), expected, rtol=1e-4, atol=1e-5)
        # the comparison can fail: a channel high-pass added to stage 3 or dropped from stage 2 changes the logits
        for variant in [(True, True, True, False), (True, False, False, False)]:
            assert not torch.allclose(reference(detector, images, variant), expected, rtol=1e-3, atol=1e-4)


def test_the_paper_model_has_the_authors_parameter_count() -> None:
    # the authors' FreqNet(): ResNet-50 layer1 (215,808) and layer2 (1,219,584), weight1-4/bias1-4 and the
    # real/imag 1x1 convs (64-channel stages: 256 + 8,192 + 4,160 + 8,192; 256-channel: 2 x (65,792 + 131,072)), fc1 513
    assert count_trainable(load_recipe("freqnet")) == 215_808 + 1_219_584 + 256 + 8_192 + 4_160 + 8_192 + 2 * (65_792 + 131_072) + 513

