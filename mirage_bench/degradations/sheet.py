"""Contact sheets: one photo under every degradation of a preset, so "JPEG 30" or "blur 5" can be seen.

Each column is one degradation (the first is the clean image). The top row shows the whole degraded image
fitted into a square tile; the bottom row zooms into the same relative region at the degraded image's own
pixels (nearest-neighbour enlargement), where compression blocks, blur and lost resolution show.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from mirage_bench.degradations.base import Degradation, Identity
from mirage_bench.degradations.presets import PRESETS, expand
from mirage_bench.degradations.seeds import image_seed
from mirage_bench.errors import DataError

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
PAD = 8


DEFAULT_ZOOM = (0.46, 0.28)  # the astronaut's face: skin, hair and edges show every degradation


def default_image() -> tuple[Image.Image, str]:
    """A real photo shipped with scikit-image (the astronaut Eileen Collins, 512 x 512, public domain)."""
    from skimage import data

    return Image.fromarray(data.astronaut()), "skimage.data.astronaut()"


def open_image(path: Path) -> Image.Image:
    """Decode fully, as RGB; a missing or broken file is an error that names it."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read image {path}: {exc}. Pass a readable PNG/JPEG with --image.") from exc


def render(
    image: Image.Image,
    degradations: list[Degradation],
    *,
    seed: int = 0,
    image_id: str = "contact-sheet",
    tile: int = 256,
    zoom_center: tuple[float, float] = (0.5, 0.5),
    zoom_fraction: float = 1 / 6,
    title: str = "",
) -> Image.Image:
    """The contact sheet as one RGB image; the clean image is always the first column."""
    if not 0 < zoom_fraction <= 1 or not all(0 <= c <= 1 for c in zoom_center):
        raise ValueError(f"zoom_center must lie in [0, 1]^2 and zoom_fraction in (0, 1]; got {zoom_center}, {zoom_fraction}")
    columns = [Identity()] + [d for d in degradations if not isinstance(d, Identity)]
    font = ImageFont.load_default(size=max(10, tile // 18))
    line = font.size + 4
    header = 2 * line if title else 0
    label = 3 * line
    width = len(columns) * (tile + PAD) + PAD
    height = header + 2 * (tile + PAD) + label + PAD
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((PAD, PAD), title, fill=INK, font=font)
    seed_of_image = image_seed(seed, image_id)
    for index, degradation in enumerate(columns):
        degraded = degradation.apply(image, seed_of_image)
        x = PAD + index * (tile + PAD)
        sheet.paste(_fit(degraded, tile), (x, header + PAD))
        sheet.paste(_zoom(degraded, tile, zoom_center, zoom_fraction), (x, header + tile + 2 * PAD))
        text = _wrap(degradation.spec if index else "clean (none)", draw, font, tile)
        text.append(f"{degraded.size[0]} x {degraded.size[1]} px")
        draw.multiline_text((x, header + 2 * tile + 3 * PAD), "\n".join(text[:3]), fill=INK, font=font, spacing=4)
    return sheet


def _fit(img: Image.Image, tile: int) -> Image.Image:
    """The whole image inside a ``tile`` square: shrunk with Lanczos, enlarged with nearest (pixels stay visible)."""
    scale = tile / max(img.size)
    size = (max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale)))
    resample = Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.NEAREST
    canvas = Image.new("RGB", (tile, tile), BACKGROUND)
    canvas.paste(img.resize(size, resample), ((tile - size[0]) // 2, (tile - size[1]) // 2))
    return canvas


def _zoom(img: Image.Image, tile: int, center: tuple[float, float], fraction: float) -> Image.Image:
    """The same relative region of every column, at the degraded image's own pixels, enlarged with nearest."""
    w, h = img.size
    side = max(1, round(fraction * min(w, h)))
    left = min(max(0, round(center[0] * w - side / 2)), w - side)
    top = min(max(0, round(center[1] * h - side / 2)), h - side)
    return img.crop((left, top, left + side, top + side)).resize((tile, tile), Image.Resampling.NEAREST)


def _wrap(text: str, draw: ImageDraw.ImageDraw, font: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Break a spec after commas so that each line fits the tile."""
    lines, current = [], ""
    for piece in text.replace(",", ", ").split(" "):
        candidate = f"{current} {piece}".strip()
        if current and draw.textlength(candidate, font=font) > width:
            lines.append(current)
            candidate = piece
        current = candidate
    return lines + [current]


def write_contact_sheet(
    names: list[str],
    out: Path,
    *,
    image_path: Path | None = None,
    seed: int = 0,
    zoom_center: tuple[float, float] | None = None,
    overwrite: bool = False,
) -> Path:
    """Render the sheet of presets/specs ``names`` on ``image_path`` (default: the astronaut) to a PNG.

    ``zoom_center`` is the zoomed region's centre in relative coordinates; by default the astronaut's face,
    or the middle of a given image."""
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise DataError(f"contact sheets are written as PNG (lossless); got {out}. Give a path ending in .png.")
    if out.exists() and not overwrite:
        raise DataError(f"{out} exists; refusing to overwrite it. Choose another --out or pass --overwrite.")
    degradations = expand(names)
    image, source = (open_image(image_path), str(image_path)) if image_path else default_image()
    described = ", ".join(f"{n} ({PRESETS.get(n).citation})" if n in PRESETS else n for n in names)
    if zoom_center is None:
        zoom_center = (0.5, 0.5) if image_path else DEFAULT_ZOOM
    sheet = render(image, degradations, seed=seed, zoom_center=zoom_center, title=f"{described} on {source}")
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, "PNG")
    return out
