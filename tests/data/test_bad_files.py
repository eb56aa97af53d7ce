"""One fixture per bad-file kind: what is done with it (kept, converted or excluded) and the reason given."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mirage_bench.config import InputSpec
from mirage_bench.data import build_manifest, open_rgb
from mirage_bench.data.images import UnusableImage, decode_file
from mirage_bench.errors import DataError
from mirage_bench.preprocess import eval_transform
from mirage_bench.protocol import load_protocol

from .conftest import write_image

FAKE = "gen/train/ai"  # every fixture sits in a one-generator GenImage tree
REAL = "gen/train/nature"


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    write_image(root / FAKE / "good.png")
    write_image(root / REAL / "good.jpg")
    return root


def _save(image: Image.Image, path: Path, fmt: str, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, fmt, **kw)
    return path


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height pixels (no pixel data): a decompression-bomb stand-in."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


def _excluded(root: Path, **kw) -> dict[str, tuple[str, str]]:
    manifest, exclusions = build_manifest(root, layout="genimage", **kw)
    assert not set(exclusions["rel_path"]) & set(manifest["rel_path"])  # never both scored and excluded
    return {r.rel_path: (r.kind, r.reason) for r in exclusions.itertuples()}


def _one_exclusion(tmp_path: Path, make, **kw) -> tuple[str, str, str]:
    root = _tree(tmp_path)
    rel = make(root)
    excluded = _excluded(root, **kw)
    assert list(excluded) == [rel]
    return (rel, *excluded[rel])


def test_truncated_file_is_excluded(tmp_path):
    def make(root):
        path = write_image(root / FAKE / "cut.jpg", size=(64, 64))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return f"{FAKE}/cut.jpg"

    _, kind, reason = _one_exclusion(tmp_path, make)
    assert kind == "decode-failed" and "truncated" in reason


def test_zero_byte_file_is_excluded(tmp_path):
    def make(root):
        (root / FAKE / "empty.png").write_bytes(b"")
        return f"{FAKE}/empty.png"

    assert _one_exclusion(tmp_path, make)[1:] == ("empty", "zero-byte file")


def test_non_image_with_image_extension_is_excluded(tmp_path):
    def make(root):
        (root / FAKE / "notes.png").write_text("this is text")
        return f"{FAKE}/notes.png"

    assert _one_exclusion(tmp_path, make)[1:] == ("not-an-image", "not an image file PIL can identify")


def test_non_image_extension_is_excluded(tmp_path):
    def make(root):
        (root / FAKE / "labels.txt").write_text("a,b")
        return f"{FAKE}/labels.txt"

    _, kind, reason = _one_exclusion(tmp_path, make)
    assert kind == "not-an-image-extension" and "'.txt'" in reason


def test_oversized_image_is_excluded_before_decoding(tmp_path):
    def make(root):
        (root / FAKE / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))
        return f"{FAKE}/bomb.png"

    _, kind, reason = _one_exclusion(tmp_path, make)
    assert kind == "too-large" and "decompression bomb" in reason


def test_pixel_cap_is_a_parameter(tmp_path):
    root = _tree(tmp_path)  # both images are 12 x 10 = 120 pixels
    with pytest.raises(DataError, match="no usable images"):
        build_manifest(root, layout="genimage", max_pixels=119)
    with pytest.raises(UnusableImage, match=r"12x10 = 120 pixels exceeds the cap of 119 pixels") as info:
        open_rgb(root / FAKE / "good.png", max_pixels=119)
    assert info.value.kind == "too-large"


def test_the_scan_hashes_each_file_and_pixel_reads_decode_the_same_pixels_unhashed(tmp_path):
    root = _tree(tmp_path)
    path = root / FAKE / "good.png"
    scanned, read = decode_file(path), decode_file(path, digest=False)
    assert scanned.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and read.sha256 is None
    assert np.array_equal(np.asarray(open_rgb(path)), np.asarray(scanned.image))
    assert np.array_equal(np.asarray(read.image), np.asarray(scanned.image))


@pytest.mark.parametrize("fmt,suffix", [("GIF", ".gif"), ("PNG", ".png")])
def test_animated_image_is_excluded(tmp_path, fmt, suffix):
    def make(root):
        frames = [Image.new("RGB", (8, 8), c) for c in ("red", "blue", "green")]
        _save(frames[0], root / FAKE / f"anim{suffix}", fmt, save_all=True, append_images=frames[1:])
        return f"{FAKE}/anim{suffix}"

    _, kind, reason = _one_exclusion(tmp_path, make)
    assert kind == "animated" and "3 frames" in reason


def test_symlink_leaving_the_root_is_excluded(tmp_path):
    outside = write_image(tmp_path / "elsewhere" / "x.png")
    write_image(tmp_path / "elsewhere" / "sub" / "y.png")

    def make(root):
        os.symlink(outside, root / FAKE / "link.png")
        return f"{FAKE}/link.png"

    _, kind, reason = _one_exclusion(tmp_path, make)
    assert kind == "symlink-outside-root" and str(outside) in reason
    root = tmp_path / "root"
    os.symlink(tmp_path / "elsewhere" / "sub", root / FAKE / "linked_dir")
    os.symlink(root / FAKE / "good.png", root / FAKE / "inside_link.png")  # stays inside: kept
    manifest, exclusions = build_manifest(root, layout="genimage")
    assert dict(zip(exclusions["rel_path"], exclusions["kind"])) == {
        f"{FAKE}/link.png": "symlink-outside-root", f"{FAKE}/linked_dir/": "symlink-outside-root",
    }
    assert f"{FAKE}/inside_link.png" in set(manifest["rel_path"])


def test_broken_symlink_is_excluded(tmp_path):
    def make(root):
        os.symlink(root / "nothing.png", root / FAKE / "dangling.png")
        return f"{FAKE}/dangling.png"

    assert _one_exclusion(tmp_path, make)[1] == "broken-symlink"


def test_hidden_files_and_folders_are_excluded(tmp_path):
    root = _tree(tmp_path)
    write_image(root / FAKE / "._good.png")
    write_image(root / FAKE / ".ipynb_checkpoints" / "x.png")
    excluded = _excluded(root)
    assert {k: v[0] for k, v in excluded.items()} == {f"{FAKE}/._good.png": "hidden", f"{FAKE}/.ipynb_checkpoints/": "hidden"}
    assert "skipped with its contents" in excluded[f"{FAKE}/.ipynb_checkpoints/"][1]


def test_upper_case_extensions_dots_and_spaces_are_kept(tmp_path):
    root = _tree(tmp_path)
    names = ["IMG_0001.JPG", "scan.v2 final copy.PNG", "a b.c.d.jpeg"]
    for name in names:
        write_image(root / FAKE / name)
    manifest, exclusions = build_manifest(root, layout="genimage")
    assert exclusions.empty
    formats = dict(zip(manifest["rel_path"], manifest["format"]))
    assert {n: formats[f"{FAKE}/{n}"] for n in names} == {"IMG_0001.JPG": "JPEG", "scan.v2 final copy.PNG": "PNG", "a b.c.d.jpeg": "JPEG"}


def test_known_corrupt_files_from_the_card_are_excluded(make_tree):
    root = make_tree(["BigGAN/val/ai/000_biggan_00094.png", "BigGAN/val/ai/000_biggan_00095.png", "BigGAN/val/nature/n1.JPEG"])
    card = load_protocol("genimage", ["generators.biggan.known_corrupt=[BigGAN/val/ai/000_biggan_00095.png]"])
    manifest, exclusions = build_manifest(root, protocol=card)
    assert list(exclusions["rel_path"]) == ["BigGAN/val/ai/000_biggan_00095.png"]
    assert exclusions["kind"].iloc[0] == "known-corrupt" and "publisher" in exclusions["reason"].iloc[0]
    assert len(manifest) == 2


def test_files_the_card_names_as_not_data_are_listed_apart_and_never_hide_an_image(make_tree):
    root = make_tree(["BigGAN/val/ai/000_biggan_00094.png", "BigGAN/val/nature/n1.JPEG"])
    for rel in ("README.txt", "BigGAN/prompts.csv", "BigGAN/notes.md"):
        (root / rel).write_text("publisher's words")
    card = load_protocol("genimage", ["not_data=[README.txt, '*/prompts.csv', 'BigGAN/val/ai/*.png']"])
    manifest, exclusions = build_manifest(root, protocol=card)
    assert len(manifest) == 2  # a usable image that a pattern matches stays data
    kinds = dict(zip(exclusions["rel_path"], exclusions["kind"]))
    assert kinds == {"BigGAN/notes.md": "not-an-image-extension", "BigGAN/prompts.csv": "not-data", "README.txt": "not-data"}
    with pytest.raises(DataError, match=r"(?s)1 file\(s\) cannot be used and --strict.*BigGAN/notes.md") as info:
        build_manifest(root, protocol=card, strict=True)
    assert "README.txt" not in str(info.value)
    (root / "BigGAN/notes.md").unlink()
    assert len(build_manifest(root, protocol=card, strict=True)[1]) == 2


def test_strict_turns_any_exclusion_into_an_error(tmp_path):
    root = _tree(tmp_path)
    (root / FAKE / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"(?s)1 file\(s\) cannot be used and --strict.*gen/train/ai/empty.png \(empty\): zero-byte file"):
        build_manifest(root, layout="genimage", strict=True)


# -- conversions to RGB: handled, deterministically and correctly ---------------------------------------


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 1000, 32768, 40000, 65535]], dtype=np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "g16.png", "PNG")
    assert Image.open(path).mode == "I;16"
    rgb = np.asarray(open_rgb(path))
    assert rgb.shape == (1, 6, 3) and (rgb[..., 0] == rgb[..., 2]).all()
    assert rgb[0, :, 0].tolist() == [0, 1, 4, 128, 156, 255]  # round(v / 257), by hand
    assert np.abs(rgb[0, :, 0] - values[0] / 257).max() <= 0.5


def test_cmyk_palette_rgba_grey_and_bilevel_convert_to_rgb(tmp_path):
    cmyk = _save(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", "JPEG", quality=100)
    assert Image.open(cmyk).mode == "CMYK"
    assert np.abs(np.asarray(open_rgb(cmyk)).astype(int) - [255, 0, 0]).max() <= 2  # pure red (JPEG rounding)

    palette = Image.new("P", (2, 1))
    palette.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    palette.putpixel((1, 0), 1)
    assert np.asarray(open_rgb(_save(palette, tmp_path / "pal.png", "PNG"))).tolist() == [[[10, 20, 30], [200, 100, 50]]]

    rgba = _save(Image.new("RGBA", (2, 2), (10, 20, 30, 0)), tmp_path / "rgba.png", "PNG")
    assert np.asarray(open_rgb(rgba))[0, 0].tolist() == [10, 20, 30]  # alpha dropped, colour as stored
    la = _save(Image.new("LA", (2, 2), (77, 0)), tmp_path / "la.png", "PNG")
    assert np.asarray(open_rgb(la))[0, 0].tolist() == [77, 77, 77]
    grey = _save(Image.new("L", (2, 2), 200), tmp_path / "grey.png", "PNG")
    assert np.asarray(open_rgb(grey))[0, 0].tolist() == [200, 200, 200]
    bilevel = _save(Image.new("1", (2, 2), 1), tmp_path / "bw.png", "PNG")
    assert np.asarray(open_rgb(bilevel))[0, 0].tolist() == [255, 255, 255]
    for path in (cmyk, rgba, la, grey, bilevel):
        assert open_rgb(path).mode == "RGB"


def test_converted_modes_are_indexed_with_their_file_mode(tmp_path):
    root = _tree(tmp_path)
    _save(Image.new("CMYK", (4, 4), (0, 255, 255, 0)), root / FAKE / "cmyk.jpg", "JPEG")
    _save(Image.fromarray(np.full((3, 3), 40000, np.uint16)), root / FAKE / "g16.png", "PNG")
    _save(Image.new("RGBA", (3, 3), (1, 2, 3, 4)), root / FAKE / "rgba.png", "PNG")
    manifest, exclusions = build_manifest(root, layout="genimage")
    assert exclusions.empty
    modes = dict(zip(manifest["rel_path"], manifest["mode"]))
    assert {k.split("/")[-1]: v for k, v in modes.items() if "good" not in k} == {"cmyk.jpg": "CMYK", "g16.png": "I;16", "rgba.png": "RGBA"}


def test_float_images_are_refused_with_the_mode(tmp_path):
    path = _save(Image.fromarray(np.ones((2, 2), np.float32)), tmp_path / "f.tif", "TIFF")
    with pytest.raises(UnusableImage, match="colour mode 'F'") as info:
        open_rgb(path)
    assert info.value.kind == "unsupported-mode"


def test_open_rgb_fully_decodes_and_raises_data_error(tmp_path):
    path = write_image(tmp_path / "x.jpg", size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="x.jpg: decoding failed: image file is truncated"):
        open_rgb(path)
    assert Image.open(io.BytesIO(data[: len(data) // 2])).size == (64, 64)  # the header alone looks fine


def test_small_and_odd_sized_images_are_indexed_and_the_input_spec_decides(tmp_path):
    root = _tree(tmp_path)
    write_image(root / FAKE / "tiny.png", size=(7, 9))
    manifest, exclusions = build_manifest(root, layout="genimage")
    assert exclusions.empty
    row = manifest[manifest["rel_path"] == f"{FAKE}/tiny.png"].iloc[0]
    assert (row["width"], row["height"]) == (7, 9)
    image = open_rgb(row["path"])
    assert tuple(eval_transform(image, InputSpec(size=8, small_image="upscale")).shape) == (3, 8, 8)
    with pytest.raises(DataError, match="smaller than the 8 px crop"):
        eval_transform(image, InputSpec(size=8, small_image="error"))
