"""The CLI: help generated from code, card listings, plugin discovery, and error handling."""

from __future__ import annotations

import textwrap

import pytest
from typer.testing import CliRunner

from mirage_bench.cli import app
from mirage_bench.detectors import DETECTORS

runner = CliRunner()


def test_help_lists_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("doctor", "detectors", "protocols"):
        assert command in result.output


def test_detectors_list_shows_cards_with_counts_and_citations():
    result = runner.invoke(app, ["detectors", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "tinycnn" in result.output and "23,761" in result.output
    assert "(no paper)" in result.output  # the citation column (wrapping depends on the console width)


def test_detectors_show_prints_resolved_yaml_with_overrides():
    result = runner.invoke(app, ["detectors", "show", "tinycnn", "--set", "train.lr=0.5"])
    assert result.exit_code == 0, result.output
    assert "lr: 0.5" in result.output and "detector: tinycnn" in result.output


def test_library_errors_print_a_message_and_exit_2():
    result = runner.invoke(app, ["detectors", "show", "tinycnm"])
    assert result.exit_code == 2
    assert "error: unknown detector card 'tinycnm'. Did you mean 'tinycnn'?" in result.output
    assert "Traceback" not in result.output


def test_debug_flag_shows_the_exception():
    result = runner.invoke(app, ["--debug", "detectors", "show", "tinycnm"])
    assert result.exit_code == 1 and result.exception is not None
    assert type(result.exception).__name__ == "ConfigError"


def test_protocols_list_and_show():
    result = runner.invoke(app, ["protocols", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "genimage" in result.output
    result = runner.invoke(app, ["protocols", "show", "genimage"])
    assert result.exit_code == 0 and "imagenet_ai_0419_sdv4" in result.output


def test_doctor_reports_versions_and_device():
    result = runner.invoke(app, ["doctor"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "version torch" in result.output and "cuda" in result.output


@pytest.fixture()
def plugin_distribution(tmp_path, monkeypatch):
    """A dummy installed distribution whose entry point registers a detector."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "mb_dummy_plugin.py").write_text(textwrap.dedent("""
        from torch import nn
        from mirage_bench.detectors.base import Detector

        class DummyDetector(Detector):
            def __init__(self, recipe):
                super().__init__(recipe)
                self.head = nn.Linear(3, 1)

            def forward(self, images):
                return self.head(images.mean(dim=(2, 3))).squeeze(1).float()
    """))
    info = site / "mb_dummy_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mb-dummy-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[mirage_bench.detectors]\ndummy-plugin = mb_dummy_plugin:DummyDetector\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(DETECTORS, "_entry_points_loaded", False)
    monkeypatch.setattr(DETECTORS, "_lazy", dict(DETECTORS._lazy))
    monkeypatch.setattr(DETECTORS, "_objects", dict(DETECTORS._objects))
    monkeypatch.setattr(DETECTORS, "_origins", dict(DETECTORS._origins))
    cards = tmp_path / "cards"
    cards.mkdir()
    (cards / "dummy.yaml").write_text("detector: dummy-plugin\ncitation: Dummy et al. 2026\ninput: {size: 8}\n")
    return cards


def test_plugin_detector_appears_through_its_entry_point(plugin_distribution):
    result = runner.invoke(app, ["detectors", "list"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    assert "dummy-plugin" in result.output and "mb-dummy-plugin" in result.output  # listed without a card
    result = runner.invoke(app, ["detectors", "list", "--recipes", str(plugin_distribution)], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if "dummy " in line)
    assert "dummy-plugin" in row and "4" in row and "Dummy et al. 2026" in row


def test_plugin_detector_passes_conformance(plugin_distribution):
    from mirage_bench.detectors.infra.conformance import check_detector

    check_detector("dummy", recipe_dirs=[str(plugin_distribution)])
