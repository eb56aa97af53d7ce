"""The project's own regression gate: a small mini-protocol run checked against the committed baseline.

The baseline (``results/baselines/mini.json``) was written by ``mirage-bench check --update`` from the same
command; a change that moves any metric of these detectors by more than the tolerance fails CI here.
"""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from mirage_bench.cli import app

BASELINE = Path(__file__).resolve().parent.parent / "results" / "baselines" / "mini.json"
GATE_DETECTORS = "tinycnn,npr-mini,mirage-mini"


def test_mini_run_matches_the_committed_baseline(tmp_path):
    runner = CliRunner()
    run = runner.invoke(app, ["run", "--detectors", GATE_DETECTORS, "--out", str(tmp_path), "--bootstrap", "0"])
    assert run.exit_code == 0, run.output
    check = runner.invoke(app, ["check", "--store", str(tmp_path), "--baseline", str(BASELINE)])
    assert check.exit_code == 0, check.output
    assert "check passed" in check.output
