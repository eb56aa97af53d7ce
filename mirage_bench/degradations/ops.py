"""The image operations, each exactly as the field's reference code does it (see
the protocols each preset names): PIL's JPEG and WebP encoders, scipy's Gaussian filter on the uint8
array per channel, PIL resampling. All work at the image's native resolution.
"""

from __future__ import annotations

import io
from typing import ClassVar, Literal

import numpy as np
from PIL import Image
from pydantic import Field, model_validator

from mirage_bench.degradations.base import DeviceStep, Primitive, register
from mirage_bench.errors import DataError
from mirage_bench.geometry import center_offset, shorter_side_to

Interpolation = Literal["nearest", "bilinear", "bicubic", "lanczos", "box", "hamming"]
_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}


def _encode_decode(img: Image.Image, fmt: str, **options: object) -> Image.Image:
    """Encode and decode in memory. The decoded image is not closed: load() drops its file object, and closing
    would only invalidate the pixels, which ``convert`` would then have to copy (0.5 ms per 512 px image)."""
    buffer = io.BytesIO()
    img.save(buffer, format=fmt, **options)
    buffer.seek(0)
    decoded = Image.open(buffer)
    decoded.load()
    return decoded if decoded.mode == "RGB" else decoded.convert("RGB")


@register("jpeg")
class Jpeg(Primitive):
    """JPEG round trip through PIL: ``save(buf, "JPEG", quality=q)`` with PIL's defaults (4:2:0 chroma
    subsampling, standard tables), then decode. cv2's encoder differs and is not used."""

    aliases: ClassVar[dict[str, str]] = {"quality": "q"}
    q: int = Field(ge=1, le=100, description="JPEG quality")

    def _apply(self, img: Image.Image, seed: int) -> Image.Image:
        return _encode_decode(img, "JPEG", quality=self.q)


@register("webp")
class Webp(Primitive):
    """Lossy WebP round trip through PIL: ``save(buf, "WEBP", quality=q)``, then decode."""

    aliases: ClassVar[dict[str, str]] = {"quality": "q"}
    q: int = Field(ge=0, le=100, description="WebP quality")

    def _apply(self, img: Image.Image, seed: int) -> Image.Image:
        return _encode_decode(img, "WEBP", quality=self.q)


@register("blur")
class Blur(Primitive):
    """Gaussian blur as the field does it (CNNSpot/UnivFD ``gaussian_blur``): per channel,
    ``scipy.ndimage.gaussian_filter(a[:, :, c], output=a[:, :, c], sigma=s)`` on the uint8 array
    (truncate 4, mode reflect). The uint8 output truncates, about -1 grey level on average against
    float-and-round; that offset is part of the reference. ``s=0`` leaves the image unchanged."""

    aliases: ClassVar[dict[str, str]] = {"sigma": "s"}
    s: float = Field(ge=0, description="standard deviation in pixels")

    def _apply(self, img: Image.Image, seed: int) -> Image.Image:
        from scipy.ndimage import gaussian_filter

        array = np.array(img)  # [H, W, 3] uint8, a writable copy
        for c in range(3):
            gaussian_filter(array[:, :, c], output=array[:, :, c], sigma=self.s)
        return Image.fromarray(array)

    def device_steps(self) -> tuple[DeviceStep, ...]:
        return (DeviceStep("blur", sigma=self.s),)


def _scaled_by(size: tuple[int, int], factor: float) -> tuple[int, int]:
    """Both sides times ``factor``, truncated (``int(w * f)``), at least 1 px."""
    return max(1, int(size[0] * factor)), max(1, int(size[1] * factor))


def _one_of(model: Primitive, names: tuple[str, ...]) -> None:
    given = [n for n in names if getattr(model, n) is not None]
    if len(given) != 1:
        raise ValueError(f"give exactly one of {', '.join(names)}; got {', '.join(given) or 'none'}")


@register("downscale")
class Downscale(Primitive):
    """Make the image smaller, keeping its aspect ratio.

    ``size=N``: the shorter side becomes N and the longer side ``int(N * long / short)``, which is what
    ``torchvision.transforms.Resize(N)`` does and how GenImage's "downscale to 112 / 64 px" is read here
    (GenImage's generated images are square, so this is N x N for them; non-square reals keep their aspect).
    ``f=x`` (0 < x < 1): both sides times x, truncated (AIGCDetectBenchmark halves both sides: ``f=0.5``).
    Interpolation defaults to bilinear, torchvision's default for PIL images (PIL antialiases when shrinking).
    A downscale never enlarges: an image whose shorter side is already at most N is returned unchanged.
    """

    aliases: ClassVar[dict[str, str]] = {"factor": "f", "interpolation": "interp", "side": "size"}
    size: int | None = Field(None, ge=1, description="target length of the shorter side, px")
    f: float | None = Field(None, gt=0, lt=1, description="scale factor for both sides")
    interp: Interpolation = "bilinear"

    @model_validator(mode="after")
    def _size_or_factor(self) -> "Downscale":
        _one_of(self, ("size", "f"))
        return self

    def target_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) of the result for an image of ``size`` (unchanged when it is already small)."""
        if self.size is not None:
            return size if min(size) <= self.size else shorter_side_to(size, self.size)
        return _scaled_by(size, self.f)

    def _apply(self, img: Image.Image, seed: int) -> Image.Image:
        target = self.target_size(img.size)
        return img if target == img.size else img.resize(target, _RESAMPLE[self.interp])

    def device_steps(self) -> tuple[DeviceStep, ...]:
        return (DeviceStep("resize", target_size=self.target_size, interp=self.interp),)


@register("resize")
class Resize(Primitive):
    """Resize up or down: ``size=N`` (shorter side to N, as ``Resize(N)``), ``f=x`` (both sides times x,
    truncated) or ``w=W,h=H`` (exactly W x H, aspect not kept). Interpolation defaults to bilinear."""

    aliases: ClassVar[dict[str, str]] = {"factor": "f", "interpolation": "interp", "width": "w", "height": "h"}
    size: int | None = Field(None, ge=1)
    f: float | None = Field(None, gt=0)
    w: int | None = Field(None, ge=1)
    h: int | None = Field(None, ge=1)
    interp: Interpolation = "bilinear"

    @model_validator(mode="after")
    def _one_target(self) -> "Resize":
        if (self.w is None) != (self.h is None):
            raise ValueError("give both w and h (or neither)")
        _one_of(self, ("size", "f", "w"))
        return self

    def target_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """(width, height) of the result for an image of ``size``."""
        if self.size is not None:
            return shorter_side_to(size, self.size)
        if self.f is not None:
            return _scaled_by(size, self.f)
        return (self.w, self.h)

    def _apply(self, img: Image.Image, seed: int) -> Image.Image:
        target = self.target_size(img.size)
        return img if target == img.size else img.resize(target, _RESAMPLE[self.interp])

    def device_steps(self) -> tuple[DeviceStep, ...]:
        return (DeviceStep("resize", target_size=self.target_size, interp=self.interp),)


@register("noise")
class Noise(Primitive):
    """Additive Gaussian noise of standard deviation ``std`` grey levels (0-255 scale), drawn from
    ``numpy.random.default_rng(seed)``, rounded and clipped to uint8."""

    aliases: ClassVar[dict[str, str]] = {"sigma": "std"}
    std: float = Field(gt=0, description="noise standard deviation in grey levels")

    @property
    def is_random(self) -> bool:
        return True

    def _apply(self, img: Image.Image, seed: int) -> Image.Image:
        array = np.asarray(img, dtype=np.float64)
        noisy = array + np.random.default_rng(seed).normal(0.0, self.std, size=array.shape)
        return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8))


@register("crop")
class Crop(Primitive):
    """A ``size`` x ``size`` crop: ``pos=center`` places it as torchvision's ``CenterCrop`` does
    (offsets ``round((W - size) / 2)``), ``pos=random`` draws it from the seed. An image smaller than the
    crop is an error, never padded."""

    size: int = Field(ge=1)
    pos: Literal["center", "random"] = "center"

    @property
    def is_random(self) -> bool:
        return self.pos == "random"

    def _apply(self, img: Image.Image, seed: int) -> Image.Image:
        w, h = img.size
        if min(w, h) < self.size:
            raise DataError(
                f"{self.spec} cannot crop a {w}x{h} image: it is smaller than {self.size} px. "
                "Downscale less, crop smaller, or leave cropping to the detector's preprocessing."
            )
        if self.pos == "center":
            left, top = center_offset(w, self.size), center_offset(h, self.size)
        else:
            rng = np.random.default_rng(seed)
            left, top = int(rng.integers(0, w - self.size + 1)), int(rng.integers(0, h - self.size + 1))
        return img.crop((left, top, left + self.size, top + self.size))
