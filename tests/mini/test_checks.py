"""The quality checks on hand-made inputs whose answers are known."""

from __future__ import annotations

import numpy as np

from mirage_bench.mini.checks import colour_histograms, loss_fell, nearest_rms, sliced_wasserstein


def test_nearest_rms_is_zero_for_copies_and_the_offset_otherwise() -> None:
    pool = np.stack([np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 200, np.uint8)])
    images = np.stack([pool[1], np.full((4, 4, 3), 51, np.uint8)])
    assert np.allclose(nearest_rms(images, pool), [0.0, 0.2])


def test_sliced_wasserstein_grows_with_the_shift() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((64, 12))
    assert sliced_wasserstein(a, a.copy()) == 0.0
    assert 0 < sliced_wasserstein(a, a + 0.1) < sliced_wasserstein(a, a + 0.5)


def test_colour_histograms_put_pure_red_in_its_bins() -> None:
    red = np.zeros((1, 2, 2, 3), np.uint8)
    red[..., 0] = 255
    features = colour_histograms(red, bins=4)
    joint, r, g = features[0, :64], features[0, 64:80], features[0, 80:96]
    assert joint[3 * 16] == 1.0 and r[15] == 1.0 and g[0] == 1.0


def _card(family: str, first: float, last: float, swd: tuple[float, float] | None) -> dict:
    return {"generators": {"x": {"family": family, "objective": "loss", "losses": {"loss": {"first": first, "last": last}},
                                 "swd_to_training_crops": None if swd is None else {"initial": swd[0], "final": swd[1]}}}}


def test_loss_fell_judges_the_objective_and_a_gan_by_its_distance_to_the_training_crops() -> None:
    assert loss_fell(_card("vae", 2.0, 1.0, (5, 6)), "x")  # only GANs are judged by the distance
    assert not loss_fell(_card("vae", 1.0, 2.0, None), "x")
    assert loss_fell(_card("gan", 0.4, 0.5, (5, 2)), "x")  # adversarial losses may rise
    assert not loss_fell(_card("gan", 1.4, 1.1, (5, 6)), "x")
