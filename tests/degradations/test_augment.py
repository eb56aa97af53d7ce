"""CNNSpot's training augmentation: probabilities, ranges, order, reproducibility."""

import numpy as np
import pytest
import torch
from PIL import Image

from mirage_bench.degradations import AUGMENT_PRESETS, augment, parse
from mirage_bench.degradations.base import Chain
from mirage_bench.errors import ConfigError, RegistryError


def _draws(spec: str, n: int, seed: int = 0) -> list:
    generator = torch.Generator().manual_seed(seed)
    policy = augment(spec)
    return [policy.draw(generator) for _ in range(n)]


def _kinds(d) -> list[str]:
    steps = d.steps if isinstance(d, Chain) else () if d.spec == "none" else (d,)
    return [s.kind for s in steps]


def test_p_one_always_blurs_then_compresses_within_the_papers_ranges() -> None:
    draws = _draws("cnnspot(p=1)", 1500)
    assert all(_kinds(d) == ["blur", "jpeg"] for d in draws)
    sigmas = [d.steps[0].s for d in draws]
    qualities = {d.steps[1].q for d in draws}
    assert 0 <= min(sigmas) < 0.1 and 2.9 < max(sigmas) <= 3
    assert qualities == set(range(30, 101))


def test_p_zero_leaves_images_alone() -> None:
    assert {d.spec for d in _draws("cnnspot(p=0)", 50)} == {"none"}


@pytest.mark.parametrize("p", [0.5, 0.1])
def test_each_step_happens_with_probability_p(p: float) -> None:
    draws = _draws(f"cnnspot(p={p})", 4000)
    blur = np.mean(["blur" in _kinds(d) for d in draws])
    jpeg = np.mean(["jpeg" in _kinds(d) for d in draws])
    both = np.mean([_kinds(d) == ["blur", "jpeg"] for d in draws])
    tolerance = 4 * np.sqrt(p * (1 - p) / 4000)
    assert abs(blur - p) < tolerance and abs(jpeg - p) < tolerance
    assert abs(both - p * p) < 4 * np.sqrt(p * p / 4000) + 0.002


def test_same_generator_seed_same_images(photo: Image.Image) -> None:
    policy = augment("cnnspot(p=0.5)")
    runs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(5)
        runs.append([np.asarray(policy.apply(photo, g)).tobytes() for _ in range(4)])
    assert runs[0] == runs[1]


def test_apply_is_the_drawn_degradation(photo: Image.Image) -> None:
    drawn = augment("cnnspot(p=1)").draw(torch.Generator().manual_seed(9))
    applied = augment("cnnspot(p=1)").apply(photo, torch.Generator().manual_seed(9))
    np.testing.assert_array_equal(np.asarray(applied), np.asarray(parse(drawn.spec).apply(photo, 0)))


def test_presets_and_spec() -> None:
    assert AUGMENT_PRESETS.names() == ["cnnspot-blur-jpeg-0.1", "cnnspot-blur-jpeg-0.5"]
    assert augment("cnnspot-blur-jpeg-0.1").spec == "cnnspot(p=0.1)"
    assert augment("CNNSpot(p=0.50)").spec == "cnnspot(p=0.5)"


def test_bad_augmentations() -> None:
    with pytest.raises(RegistryError, match="Did you mean 'cnnspot'"):
        augment("cnspot(p=0.5)")
    with pytest.raises(ConfigError, match="less than or equal to 1"):
        augment("cnnspot(p=2)")
