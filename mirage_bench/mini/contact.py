"""The contact sheet: a row of real crops, then a row of each generator's fakes (val split), side by side."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from mirage_bench.mini.manifest import ImageRecord

LABEL_WIDTH = 110


def write_contact_sheet(root: Path, records: list[ImageRecord], out: Path, per_row: int = 16, scale: int = 2) -> Path:
    """Rows: ``real`` (val reals of the first generator's subset), then each generator's val fakes."""
    generators = list(dict.fromkeys(r.generator for r in records))
    rows = [("real (val photos)", [r for r in records if r.generator == generators[0] and r.split == "val" and r.label == 0])]
    rows += [(g, [r for r in records if r.generator == g and r.split == "val" and r.label == 1]) for g in generators]
    side = Image.open(root / records[0].rel_path).size[0] * scale
    pad = 2
    sheet = Image.new("RGB", (LABEL_WIDTH + per_row * (side + pad), len(rows) * (side + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for row, (name, items) in enumerate(rows):
        y = row * (side + pad)
        draw.text((4, y + side // 2 - 6), name, fill="black")
        for col, record in enumerate(items[:per_row]):
            with Image.open(root / record.rel_path) as image:
                tile = image.convert("RGB").resize((side, side), Image.Resampling.NEAREST)
            sheet.paste(tile, (LABEL_WIDTH + col * (side + pad), y))
    sheet.save(out, format="PNG", optimize=True)
    return out
