"""Contact sheets: one column per degradation, clean first, written as a new PNG."""

import numpy as np
import pytest
from PIL import Image

from mirage_bench.degradations import parse
from mirage_bench.degradations.sheet import render, write_contact_sheet
from mirage_bench.errors import DataError


def test_render_has_a_column_per_degradation_and_the_clean_image_first(photo: Image.Image) -> None:
    degradations = [parse("jpeg(q=30)"), parse("downscale(size=24)")]
    sheet = render(photo, degradations, tile=64, zoom_fraction=1.0)
    assert sheet.mode == "RGB" and sheet.width == 3 * (64 + 8) + 8
    # Zoom row (no title, so it starts at 64 + 2 * 8), column 0: the clean photo's centre square, nearest.
    zoom_box = (8, 64 + 16, 8 + 64, 64 + 16 + 64)
    side = min(photo.size)
    left = round(0.5 * photo.size[0] - side / 2)
    expected = photo.crop((left, 0, left + side, side)).resize((64, 64), Image.Resampling.NEAREST)
    np.testing.assert_array_equal(np.asarray(sheet.crop(zoom_box)), np.asarray(expected))


def test_write_refuses_to_overwrite_and_non_png(tmp_path, photo: Image.Image) -> None:
    src = tmp_path / "photo.png"
    photo.save(src)
    out = write_contact_sheet(["blur(s=2)", "jpeg(q=50)"], tmp_path / "sheet.png", image_path=src)
    with Image.open(out) as written:
        assert written.format == "PNG" and written.width == 3 * (256 + 8) + 8
    with pytest.raises(DataError, match="refusing to overwrite"):
        write_contact_sheet(["blur(s=2)"], out, image_path=src)
    with pytest.raises(DataError, match="PNG"):
        write_contact_sheet(["blur(s=2)"], tmp_path / "sheet.jpg", image_path=src)


def test_unreadable_image_is_named(tmp_path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match="broken.png"):
        write_contact_sheet(["jpeg(q=50)"], tmp_path / "s.png", image_path=bad)
