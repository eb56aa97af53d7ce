"""Each image operation against an independent computation of the field's reference."""

import io

import numpy as np
import pytest
from PIL import Image
from scipy.ndimage import gaussian_filter

from mirage_bench.degradations import parse
from mirage_bench.errors import DataError


def _pil_round_trip(img: Image.Image, fmt: str, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    img.save(buffer, fmt, quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


@pytest.mark.parametrize("q", [95, 65, 30])
def test_jpeg_is_the_image_pil_writes(photo: Image.Image, q: int) -> None:
    out = parse(f"jpeg(q={q})").apply(photo, 0)
    assert out.mode == "RGB" and out.size == photo.size
    np.testing.assert_array_equal(np.asarray(out), _pil_round_trip(photo, "JPEG", q))


def test_jpeg_quality_changes_the_image(photo: Image.Image) -> None:
    a = np.asarray(parse("jpeg(q=95)").apply(photo, 0), dtype=float)
    b = np.asarray(parse("jpeg(q=30)").apply(photo, 0), dtype=float)
    ref = np.asarray(photo, dtype=float)
    assert np.abs(a - ref).mean() < np.abs(b - ref).mean()


def test_webp_is_the_image_pil_writes(photo: Image.Image) -> None:
    out = parse("webp(q=50)").apply(photo, 0)
    np.testing.assert_array_equal(np.asarray(out), _pil_round_trip(photo, "WEBP", 50))


@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_blur_is_scipy_on_the_uint8_array_per_channel(photo: Image.Image, sigma: float) -> None:
    array = np.asarray(photo)
    expected = np.stack([gaussian_filter(array[:, :, c], sigma=sigma) for c in range(3)], axis=-1)
    assert expected.dtype == np.uint8
    np.testing.assert_array_equal(np.asarray(parse(f"blur(s={sigma})").apply(photo, 0)), expected)


def test_blur_keeps_the_uint8_truncation_of_the_reference(photo: Image.Image) -> None:
    """The reference truncates to uint8: darker on average than a float blur rounded (protocols.md: about -1)."""
    array = np.asarray(photo)
    rounded = np.stack([np.rint(gaussian_filter(array[:, :, c].astype(float), sigma=3)) for c in range(3)], -1)
    offset = np.asarray(parse("blur(s=3)").apply(photo, 0), dtype=float).mean() - rounded.mean()
    assert -1.5 < offset < -0.5  # two truncating 1-D passes: about -1


def test_blur_zero_is_the_identity(photo: Image.Image) -> None:
    np.testing.assert_array_equal(np.asarray(parse("blur(s=0)").apply(photo, 0)), np.asarray(photo))


def test_downscale_to_a_size_sets_the_shorter_side(photo: Image.Image) -> None:
    w, h = photo.size  # 120 x 96
    out = parse("downscale(size=64)").apply(photo, 0)
    expected_size = (int(64 * w / h), 64)  # torchvision Resize(64): longer side scaled and truncated
    assert out.size == expected_size
    np.testing.assert_array_equal(np.asarray(out), np.asarray(photo.resize(expected_size, Image.Resampling.BILINEAR)))


def test_downscale_of_a_portrait_image(photo: Image.Image) -> None:
    portrait = photo.transpose(Image.Transpose.ROTATE_90)  # 96 x 120
    assert parse("downscale(size=50)").apply(portrait, 0).size == (50, int(50 * 120 / 96))


def test_downscale_never_enlarges(photo: Image.Image) -> None:
    assert parse("downscale(size=112)").apply(photo, 0) is photo


def test_downscale_by_a_factor_halves_both_sides(rng_image: Image.Image) -> None:
    out = parse("downscale(f=0.5,interp=bicubic)").apply(rng_image, 0)  # 47 x 33
    assert out.size == (23, 16)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(rng_image.resize((23, 16), Image.Resampling.BICUBIC)))


def test_resize_up_and_exact(photo: Image.Image) -> None:
    assert parse("resize(size=192)").apply(photo, 0).size == (240, 192)
    assert parse("resize(w=10,h=30)").apply(photo, 0).size == (10, 30)
    assert parse("resize(f=2)").apply(photo, 0).size == (240, 192)


def test_noise_has_the_asked_std_and_depends_on_the_seed() -> None:
    grey = Image.new("RGB", (64, 64), (128, 128, 128))
    noise = parse("noise(std=5)")
    a, b = (np.asarray(noise.apply(grey, s), dtype=float) for s in (1, 2))
    assert abs((a - 128).std() - 5) < 0.3 and abs((a - 128).mean()) < 0.3
    assert not np.array_equal(a, b)
    np.testing.assert_array_equal(a, np.asarray(noise.apply(grey, 1), dtype=float))


def test_center_crop_places_like_torchvision(rng_image: Image.Image) -> None:
    out = parse("crop(size=20)").apply(rng_image, 0)  # 47 x 33: offsets round(27/2)=14, round(13/2)=6
    np.testing.assert_array_equal(np.asarray(out), np.asarray(rng_image)[6:26, 14:34])


def test_random_crop_follows_the_seed(rng_image: Image.Image) -> None:
    crop = parse("crop(size=20,pos=random)")
    outs = {np.asarray(crop.apply(rng_image, s)).tobytes() for s in range(8)}
    assert len(outs) > 1
    assert np.array_equal(np.asarray(crop.apply(rng_image, 3)), np.asarray(crop.apply(rng_image, 3)))


def test_crop_larger_than_the_image_is_an_error(rng_image: Image.Image) -> None:
    with pytest.raises(DataError, match="smaller than 40 px"):
        parse("crop(size=40)").apply(rng_image, 0)


def test_chain_blurs_then_compresses(photo: Image.Image) -> None:
    blurred = Image.fromarray(np.stack([gaussian_filter(np.asarray(photo)[:, :, c], sigma=2) for c in range(3)], -1))
    expected = _pil_round_trip(blurred, "JPEG", 50)
    np.testing.assert_array_equal(np.asarray(parse("chain(blur(s=2),jpeg(q=50))").apply(photo, 0)), expected)


def test_a_decoded_jpeg_compresses_again_as_a_plain_image_would(photo: Image.Image) -> None:
    """The round trip hands back PIL's decoded image itself (no copy); saving it again gives the bytes a
    plain copy of its pixels gives."""
    once = Image.fromarray(_pil_round_trip(photo, "JPEG", 90))
    expected = _pil_round_trip(once, "JPEG", 50)
    np.testing.assert_array_equal(np.asarray(parse("chain(jpeg(q=90),jpeg(q=50))").apply(photo, 0)), expected)


def test_none_returns_the_image(photo: Image.Image) -> None:
    assert parse("none").apply(photo, 5) is photo


def test_apply_refuses_non_rgb_and_bad_seeds(photo: Image.Image) -> None:
    with pytest.raises(DataError, match="RGB PIL image, got a L PIL image"):
        parse("jpeg(q=50)").apply(photo.convert("L"), 0)
    with pytest.raises(ValueError, match="non-negative int"):
        parse("noise(std=1)").apply(photo, -1)
