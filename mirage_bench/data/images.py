"""Decoding one image file into RGB, strictly: a file is either fully decoded or refused with its reason.

Never ``ImageFile.LOAD_TRUNCATED_IMAGES`` and never a substitute image: a truncated, empty, animated,
oversized or undecodable file raises :class:`UnusableImage`, whose ``kind`` names the problem so that an
index lists it as an exclusion. Colour conversions are deterministic (see :func:`to_rgb`).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, UnidentifiedImageError

from mirage_bench.errors import DataError

#: Largest image (in pixels) that is decoded at all: 8192 x 8192. Guards against decompression bombs;
#: lower than PIL's own warning threshold (89.5 Mpx), so PIL never decides for us.
MAX_PIXELS = 8192 * 8192

#: File extensions read as images (compared in lower case, so ``.JPG`` and ``.PNG`` count).
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})

_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}
#: Colour modes :func:`to_rgb` converts, each with the name a run counts it under (RGB is kept as it is).
_ALPHA = {"RGBA": "RGBA (alpha dropped)", "LA": "grey + alpha (alpha dropped)", "PA": "palette + alpha (alpha dropped)",
          "P": "palette"}  # "P" may carry a transparent index
_PLAIN = {"1": "1-bit", "L": "8-bit grey", "CMYK": "CMYK", "YCbCr": "YCbCr"}


class UnusableImage(DataError):
    """An image file that cannot be used; ``kind`` is a short stable name of the problem."""

    def __init__(self, kind: str, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True)
class DecodedImage:
    """A fully decoded image with the facts an index records about its file."""

    image: Image.Image  # RGB
    width: int
    height: int
    format: str
    mode: str  # the file's own colour mode, before conversion
    bytes: int
    sha256: str | None  # None when decoded without ``digest``


def open_rgb(path: str | Path, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The image at ``path`` as a fully decoded RGB image; raises :class:`UnusableImage` (a DataError). The
    bytes are not hashed: training and scoring read pixels, the scan hashed the files (the hash took 0.36 ms of a
    512 px PNG's 8.5 ms in a fast-path worker)."""
    return decode_file(path, max_pixels, digest=False).image


def decode_file(path: str | Path, max_pixels: int = MAX_PIXELS, digest: bool = True) -> DecodedImage:
    """Decode ``path`` completely and hash its bytes (``digest``), in bounded memory: the header is identified and
    its size checked against ``max_pixels`` before any pixel data is read, and the hash reads the file in chunks.
    Why: a 1 GB junk ``.png`` read whole before its header was looked at cost 0.9 GB of memory for one refusal."""
    name = str(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if not size:
                raise UnusableImage("empty", name, "zero-byte file")
            image = _decode(fh, name, max_pixels)
            sha256 = None
            if digest:
                fh.seek(0)
                hasher = hashlib.sha256()  # in chunks, never the whole file at once (hashlib.file_digest needs 3.11)
                for block in iter(lambda: fh.read(1 << 20), b""):
                    hasher.update(block)
                sha256 = hasher.hexdigest()
    except OSError as exc:
        raise UnusableImage("unreadable", name, f"cannot read the file ({exc.strerror or exc})") from None
    fmt, mode = str(image.format), image.mode
    return DecodedImage(to_rgb(image, name), image.width, image.height, fmt, mode, size, sha256)


def _decode(fh: BinaryIO, name: str, max_pixels: int) -> Image.Image:
    """Identify the open file from its header, refuse it by size or frame count, then load every pixel.

    The file object stays the caller's: load() leaves the pixels in memory, so closing the file afterwards keeps
    them (``Image.close`` would not: it drops the pixels, and to_rgb would have to copy them to survive it)."""
    with warnings.catch_warnings():
        # PIL only *warns* between its own limit and twice that; turn that warning into a refusal too.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(fh)  # lazy: reads the header only
        except UnidentifiedImageError:
            raise UnusableImage("not-an-image", name, "not an image file PIL can identify") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise UnusableImage("too-large", name, f"refused as a decompression bomb ({exc})") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise UnusableImage("decode-failed", name, f"cannot read the image header ({exc})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise UnusableImage(
            "too-large", name, f"{width}x{height} = {width * height:,} pixels exceeds the cap of {max_pixels:,} pixels"
        )
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        raise UnusableImage("animated", name, f"animated {image.format} with {frames} frames; which frame to score is undefined")
    try:
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise UnusableImage("decode-failed", name, f"decoding failed: {exc}") from None
    return image


def conversion(mode: str, fmt: str) -> str | None:
    """The conversion :func:`to_rgb` applies to a file of this colour mode and format: None for RGB (kept as it
    is), else a short name for the counts a run prints and records (``converted``)."""
    if mode == "RGB":
        return None
    if mode in _SIXTEEN_BIT or (mode == "I" and fmt == "PNG"):  # PNG's "I" is at most 16-bit
        return "16-bit grey"
    return _ALPHA.get(mode) or _PLAIN.get(mode)


def to_rgb(image: Image.Image, name: str = "<image>") -> Image.Image:
    """Convert a decoded image to 8-bit RGB, deterministically (an RGB image is returned as it is, not copied).

    - 16-bit grey: ``round(v / 257)``, so 0..65535 maps onto 0..255 within half a grey level (PIL's own
      ``convert`` clips everything above 255 to white).
    - alpha (RGBA, LA, P with transparency): the alpha channel is dropped, colour kept as stored; this is
      what the field's loaders (``convert("RGB")``) do, so scores stay comparable with published numbers.
    - CMYK, YCbCr, 1-bit, greyscale: PIL's conversion (CMYK without ICC handling).
    - EXIF orientation is not applied: pixels are scored as stored, as the publishers' loaders do.
    - Float and 32-bit integer images are refused: their value range is not defined by the file.
    """
    mode, kind = image.mode, conversion(image.mode, str(image.format))
    if mode == "RGB":
        return image
    if kind == "16-bit grey":
        values = np.asarray(image, dtype=np.uint32)
        grey = ((values * 255 + 32767) // 65535).astype(np.uint8)  # exact integer round(v * 255 / 65535)
        return Image.fromarray(np.stack([grey] * 3, axis=-1), "RGB")
    if mode in _ALPHA:
        return image.convert("RGBA").convert("RGB")
    if mode in _PLAIN:
        return image.convert("RGB")
    raise UnusableImage(
        "unsupported-mode",
        name,
        f"colour mode {mode!r} ({image.format}) has no defined 8-bit RGB conversion; "
        f"supported: RGB, 16-bit grey, {', '.join(sorted(_ALPHA | _PLAIN))}",
    )
