"""NPR: the residual by hand, no resize before it (odd sizes included), and a task it must learn."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from mirage_bench.cards import load_recipe
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.npr import npr_residual
from mirage_bench.preprocess import eval_transform, train_transform


def test_residual_matches_a_hand_computed_example() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    # down(x, 1/2) nearest keeps x[0,0]=0, x[0,2]=2, x[2,0]=8, x[2,2]=10; up copies each into its 2x2 cell.
    expected = torch.tensor([[0.0, 1, 0, 1], [4, 5, 4, 5], [0, 1, 0, 1], [4, 5, 4, 5]]).view(1, 1, 4, 4)
    assert torch.equal(npr_residual(x), expected)


def test_odd_sizes_are_cropped_to_even_before_the_residual() -> None:
    x = torch.randn(2, 3, 7, 9)
    r = npr_residual(x)
    assert r.shape == (2, 3, 6, 8)
    assert torch.equal(r, npr_residual(x[..., :6, :8]))


def test_a_nearest_upsampled_image_has_zero_residual() -> None:
    small = torch.randn(1, 3, 5, 6)
    assert torch.equal(npr_residual(small.repeat_interleave(2, -2).repeat_interleave(2, -1)), torch.zeros(1, 3, 10, 12))


def test_card_never_resizes() -> None:
    spec = load_recipe("npr").input
    assert spec.resize is None and spec.odd_size == "crop-even" and spec.eval_crop == "none" and spec.small_image == "error"


@pytest.mark.parametrize("size", [(301, 257), (300, 256), (225, 231)])
def test_spy_no_resize_between_the_file_and_the_residual(size, monkeypatch) -> None:
    """Preprocessing with the real card never calls PIL's resize, and the first interpolation the forward
    pass makes is the residual's down-sampling, applied to exactly the (even-cropped) input pixels."""
    spec = load_recipe("npr").input
    image = Image.effect_noise(size, 64).convert("RGB")
    pil_resizes: list = []
    original_resize = Image.Image.resize
    monkeypatch.setattr(Image.Image, "resize", lambda self, *a, **k: pil_resizes.append(a) or original_resize(self, *a, **k))
    evaluated = eval_transform(image, spec)
    trained = train_transform(image, spec, torch.Generator().manual_seed(0))
    assert pil_resizes == []
    w, h = size
    assert evaluated.shape == (3, h - h % 2, w - w % 2) and trained.shape == (3, 224, 224)

    calls: list[tuple[torch.Tensor, str]] = []
    original_interpolate = F.interpolate

    def spy(inp, *args, **kwargs):
        calls.append((inp.detach().clone(), kwargs.get("mode")))
        return original_interpolate(inp, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "interpolate", spy)
    detector = build_tiny("npr").eval()
    raw = evaluated.unsqueeze(0)[..., :-1]  # an odd width inside the detector as well
    with torch.no_grad():
        detector(raw)
    assert [mode for _, mode in calls] == ["nearest", "nearest"]
    assert torch.equal(calls[0][0], raw[..., : raw.shape[-2] // 2 * 2, : raw.shape[-1] // 2 * 2])


def test_learns_nearest_upsampling_within_a_few_hundred_steps(one_thread) -> None:
    """Fakes = nearest-up-sampled noise, reals = plain noise: NPR must beat chance by >= 30 points."""
    torch.manual_seed(0)

    def batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        real = torch.randn(n, 3, 32, 32)
        fake = torch.randn(n, 3, 16, 16).repeat_interleave(2, -2).repeat_interleave(2, -1)
        return torch.cat([real, fake]), torch.cat([torch.zeros(n), torch.ones(n)])

    detector = build_tiny("npr")
    optimiser = torch.optim.Adam(detector.parameters(), lr=detector.recipe.train.lr)
    detector.train()
    for _ in range(100):
        images, labels = batch(8)
        loss, _ = detector.training_loss(images, labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    detector.eval()
    images, labels = batch(100)
    with torch.no_grad():
        accuracy = float(((detector(images) > 0).float() == labels).float().mean())
    assert accuracy >= 0.80, accuracy
