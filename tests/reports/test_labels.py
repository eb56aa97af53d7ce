"""A reconstructed detector (its card's ``reconstruction: true``) is marked ‡ wherever a random backbone is
marked †: every table format, the HTML report, the leaderboard (Markdown and JSON); and both flags are columns
of every CSV/JSON the reports write, metrics.csv included (issue 28)."""

from __future__ import annotations

import json
from html import escape as html_escape

import pandas as pd
import pytest
import storegen

from mirage_bench.reports.leaderboard import write_leaderboard
from mirage_bench.reports.report import build_report, write_report
from mirage_bench.reports.runs import RECONSTRUCTION_NOTE, load_runs


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    run_id = storegen.write_run(root, detectors=("alpha", "beta", "gamma"), degradations=("none", "jpeg(q=50)"),
                                random=["beta", "gamma"], reconstruction=["gamma"])
    out = root / "report"
    write_report(build_report(load_runs(root, [run_id]), metrics=("acc", "ap"), n_boot=0, with_figures=False), out)
    return root, out


def test_every_table_format_marks_the_reconstruction(store):
    _, out = store
    for table in ("main", "degradation"):
        md = (out / f"{table}.md").read_text()
        assert "| gamma†‡ |" in md and "| beta† |" in md and "| alpha |" in md
        assert f"‡ {RECONSTRUCTION_NOTE}." in md
        tex = (out / f"{table}.tex").read_text()
        assert r"gamma$^\dagger$$^\ddagger$" in tex and "not its authors' code" in tex
        rows = {r["detector"]: r for r in json.loads((out / f"{table}.json").read_text())["rows"]}
        assert [(rows[d]["random_backbone"], rows[d]["reconstruction"]) for d in ("alpha", "beta", "gamma")] == [
            (False, False), (True, False), (True, True)]
        csv = pd.read_csv(out / f"{table}.csv").set_index("detector")
        assert csv["reconstruction"].to_dict() == {"alpha": False, "beta": False, "gamma": True}
    html = (out / "report.html").read_text()
    assert "<td>gamma†‡</td>" in html and f"Rows marked ‡ are a {html_escape(RECONSTRUCTION_NOTE)}." in html


def test_metrics_csv_carries_both_flags(store):
    _, out = store
    long = pd.read_csv(out / "metrics.csv")
    flags = long.groupby("detector")[["random_backbone", "reconstruction"]].agg(set).to_dict()
    assert flags["random_backbone"] == {"alpha": {False}, "beta": {True}, "gamma": {True}}
    assert flags["reconstruction"] == {"alpha": {False}, "beta": {False}, "gamma": {True}}


def test_leaderboard_marks_and_records_the_reconstruction(store, tmp_path):
    root, _ = store
    write_leaderboard(root, tmp_path, n_boot=0)
    md = (tmp_path / "leaderboard.md").read_text()
    assert "gamma†‡" in md and f"‡ {RECONSTRUCTION_NOTE}." in md
    payload = json.loads((tmp_path / "leaderboard.json").read_text())
    assert payload["reconstruction_note"] == RECONSTRUCTION_NOTE
    rows = {r["detector"]: r for r in payload["rows"]}
    assert (rows["gamma†‡"]["reconstruction"], rows["gamma†‡"]["random_backbone"]) == (True, True)
    assert (rows["alpha"]["reconstruction"], rows["alpha"]["random_backbone"]) == (False, False)


def test_the_mirage_cards_are_reconstructions_and_the_baselines_are_not():
    from mirage_bench.cards import load_recipe

    for card in ("mirage", "mirage-mini", "mirage-no-bank", "mirage-mini-text-only"):
        assert load_recipe(card).reconstruction, card
    for card in ("cnnspot", "univfd", "coop", "npr", "tinycnn"):
        assert not load_recipe(card).reconstruction, card


def test_ablation_csv_rows_carry_the_variants_flags(tmp_path):
    from mirage_bench.reports.ablation import ablation_table

    run_id = storegen.write_run(tmp_path, detectors=("full", "variant"), degradations=("none",), random=["full", "variant"],
                                reconstruction=["full", "variant"])
    table = ablation_table(load_runs(tmp_path, [run_id]).predictions, "full", metrics=("acc",), n_boot=0)
    assert table["random_backbone"].all() and table["reconstruction"].all()


def test_figures_carry_the_marks(tmp_path):
    run_id = storegen.write_run(tmp_path, detectors=("alpha", "gamma"), degradations=("none", "jpeg(q=50)"),
                                random=["gamma"], reconstruction=["gamma"])
    figures = build_report(load_runs(tmp_path, [run_id]), metrics=("acc",), n_boot=0).figures
    titles = {f.name: f.title for f in figures}
    assert titles["heatmap-gamma"].startswith("gamma†‡:") and titles["hist-alpha"].startswith("alpha:")
