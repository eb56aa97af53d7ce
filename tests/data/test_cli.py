"""``mirage-bench data verify/stats/index`` on fixture trees, messages included (Typer's CliRunner)."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from mirage_bench.cli import app

from .conftest import write_image

ENV = {"COLUMNS": "250"}  # wide enough that rich never folds a line the tests read


@pytest.fixture
def tree(tmp_path):
    """A GenImage-style subset: JPEG reals, PNG fakes, one zero-byte and one hidden file."""
    root = tmp_path / "GenImage"
    for i in range(2):
        write_image(root / f"ADM/imagenet_ai_0508_adm/val/ai/{i}_adm.PNG", size=(16, 16))
        write_image(root / f"ADM/imagenet_ai_0508_adm/val/nature/ILSVRC2012_val_{i}.JPEG", size=(20, 12))
    (root / "ADM/imagenet_ai_0508_adm/val/ai/broken.png").write_bytes(b"")
    write_image(root / "ADM/.hidden.png")
    return root


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


def test_verify_lists_every_excluded_file_with_its_reason(tree):
    result = run("data", "verify", tree)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "layout genimage (detected: found ADM/imagenet_ai_0508_adm/val/ai)" in lines  # after the progress lines
    assert "4 usable images, 2 file(s) excluded" in lines
    assert "  excluded ADM/.hidden.png (hidden): hidden file (name starts with '.')" in lines
    assert "  excluded ADM/imagenet_ai_0508_adm/val/ai/broken.png (empty): zero-byte file" in lines


def test_verify_strict_fails_with_the_list(tree):
    result = run("data", "verify", tree, "--strict")
    assert result.exit_code == 2
    assert "2 file(s) cannot be used and --strict forbids exclusions" in result.output
    assert "ADM/imagenet_ai_0508_adm/val/ai/broken.png (empty): zero-byte file" in result.output


def test_verify_against_a_card_says_what_differs(tree):
    result = run("data", "verify", tree, "--protocol", "genimage")
    assert result.exit_code == 2
    assert "the data contradicts protocol 'genimage' v1" in result.output
    assert "generator 'sdv14' (folder 'stable_diffusion_v_1_4'" in result.output
    ok = run("data", "verify", tree, "--protocol", "genimage", "--layout", "genimage")
    assert ok.exit_code == 2  # an explicit layout does not bypass the card check
    good = run("data", "verify", tree / "ADM", "--protocol", "genimage-degrade")
    assert good.exit_code == 2 and "generator 'sdv14'" in good.output


def test_stats_prints_counts_formats_sizes_and_the_format_warning(tree):
    result = run("data", "stats", tree)
    assert result.exit_code == 0, result.output
    out = result.output
    assert "2 file(s) excluded (run `data verify` for the list)" in out
    assert "4 images" in out
    assert "JPEG 100%" in out and "PNG 100%" in out
    assert "20 / 20 / 20" in out and "16 / 16 / 16" in out  # widths of reals, fakes
    assert ("warning: generator 'ADM': reals are JPEG 100% but fakes are PNG 100%; a detector can separate them "
            "by file format alone. Evaluate with JPEG degradation as well.") in out
    assert "warning: generator 'ADM': median size of reals is 20x12 but of fakes 16x16" in out


def test_stats_without_differences_warns_nothing(tmp_path):
    root = tmp_path / "same"
    for cls in ("0_real", "1_fake"):
        write_image(root / "progan" / cls / "a.png")
    result = run("data", "stats", root)
    assert result.exit_code == 0 and "warning" not in result.output


def test_index_writes_parquet_and_never_overwrites(tree, tmp_path):
    out = tmp_path / "out" / "genimage.parquet"
    result = run("data", "index", tree, "--out", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 4 images; 2 file(s) excluded" in result.output
    manifest = pd.read_parquet(out)
    assert list(manifest.columns[:4]) == ["image_id", "path", "rel_path", "label"]
    assert set(manifest["format"]) == {"JPEG", "PNG"}
    assert sorted(pd.read_csv(out.with_suffix(".exclusions.csv"))["kind"]) == ["empty", "hidden"]
    again = run("data", "index", tree, "--out", out)
    assert again.exit_code == 2 and "already exists; refusing to overwrite it" in again.output
    stats = run("data", "stats", out)
    assert stats.exit_code == 0 and "4 images" in stats.output


def test_unknown_layout_name_is_a_clean_error(tree):
    result = run("data", "verify", tree, "--layout", "forensynth")
    assert result.exit_code == 2 and "Did you mean 'forensynths'" in result.output
