"""``mirage-bench degradations list/show/sheet`` through Typer's CliRunner."""

from PIL import Image
from typer.testing import CliRunner

from mirage_bench.cli import app

runner = CliRunner()


def test_list_names_every_preset_and_augmentation() -> None:
    result = runner.invoke(app, ["degradations", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for name in ("genimage", "ufd-jpeg", "ufd-blur", "aigcdetect", "sidbench", "cnnspot-blur-jpeg-0.5", "cnnspot-blur-jpeg-0.1"):
        assert name in result.output
    assert "chain(blur(s=2),jpeg(q=50))" in result.output


def test_show_genimage_states_the_downscale_choice() -> None:
    result = runner.invoke(app, ["degradations", "show", "genimage"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "downscale(size=112,interp=bilinear)" in result.output and "blur(s=5)" in result.output
    assert "shorter side" in result.output and "bilinear" in result.output


def test_show_a_spec_prints_its_canonical_form() -> None:
    result = runner.invoke(app, ["degradations", "show", "chain(blur(sigma=2), jpeg(quality=50))"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "chain(blur(s=2),jpeg(q=50))" in result.output


def test_show_unknown_suggests_and_exits_2() -> None:
    result = runner.invoke(app, ["degradations", "show", "genimag"])
    assert result.exit_code == 2
    assert "Did you mean 'genimage'" in result.output


def test_sheet_writes_a_png(tmp_path) -> None:
    src = tmp_path / "img.png"
    Image.new("RGB", (40, 30), (200, 100, 50)).save(src)
    out = tmp_path / "sheet.png"
    result = runner.invoke(app, ["degradations", "sheet", "jpeg(q=30)", "--image", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "wrote" in result.output
