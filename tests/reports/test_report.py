"""Every report format, rendered from a generated store, shows the numbers the store implies."""

import base64
import json
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
import storegen
from sklearn.metrics import average_precision_score

from mirage_bench.errors import DataError
from mirage_bench.reports.report import build_report, write_report
from mirage_bench.reports.runs import load_runs

DEGRADATIONS = ("none", "jpeg(q=50)", "blur(s=2)")


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("store")
    run_id = storegen.write_run(root, degradations=DEGRADATIONS, random=["beta"])
    report = build_report(load_runs(root, [run_id]), metrics=("acc", "ap"), n_boot=0)
    out = root / "report"
    write_report(report, out)
    return root, out, report


def _expected(root, detector, generator, degradation="none"):
    frame = pd.read_parquet(sorted((root / "predictions").glob("*.parquet")))
    rows = frame[(frame.detector == detector) & (frame.generator == generator) & (frame.degradation == degradation)]
    return 100 * np.mean((rows.p_fake > 0.5) == rows.label), 100 * average_precision_score(rows.label, rows.p_fake)


def test_csv_and_json_numbers_match_the_store(written):
    root, out, _ = written
    csv = pd.read_csv(out / "main.csv").set_index("detector")
    data = json.loads((out / "main.json").read_text())
    rows = {r["detector"]: r for r in data["rows"]}
    for detector in ("alpha", "beta"):
        per_generator = []
        for generator in storegen.GENERATORS:
            acc, ap = _expected(root, detector, generator)
            per_generator.append((acc, ap))
            assert csv.loc[detector, f"{generator}/acc"] == pytest.approx(acc)
            assert csv.loc[detector, f"{generator}/ap"] == pytest.approx(ap)
            assert rows[detector][f"{generator}/ap"] == pytest.approx(ap)
        assert csv.loc[detector, "mean/acc"] == pytest.approx(np.mean([a for a, _ in per_generator]))
    assert csv.loc["beta", "random_backbone"] and not csv.loc["alpha", "random_backbone"]


def test_degradation_table_is_the_mean_over_generators(written):
    root, out, _ = written
    csv = pd.read_csv(out / "degradation.csv").set_index("detector")
    for spec in DEGRADATIONS:
        expected = np.mean([_expected(root, "alpha", g, spec)[0] for g in storegen.GENERATORS])
        assert csv.loc["alpha", f"{spec}/acc"] == pytest.approx(expected)


def test_markdown_and_latex_mark_best_second_and_random_backbone(written):
    root, out, _ = written
    acc_alpha, acc_beta = (np.mean([_expected(root, d, g)[0] for g in storegen.GENERATORS]) for d in ("alpha", "beta"))
    best, second = ("beta", "alpha") if round(acc_beta, 1) > round(acc_alpha, 1) else ("alpha", "beta")
    md = (out / "main.md").read_text()
    lines = {line.split("|")[1].strip().rstrip("†"): line for line in md.splitlines() if line.startswith("| alpha") or line.startswith("| beta")}
    header = [h.strip() for h in next(line for line in md.splitlines() if line.startswith("| detector")).split("|")]
    mean_cell = lambda d: lines[d].split("|")[header.index("mean")].strip()
    assert mean_cell(best).startswith(f"**{max(acc_alpha, acc_beta):.1f}**")
    assert mean_cell(second).startswith(f"<u>{min(acc_alpha, acc_beta):.1f}</u>")
    assert "beta†" in md and "random backbone weights: not a pretrained result" in md
    tex = (out / "main.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    assert rf"\textbf{{{max(acc_alpha, acc_beta):.1f}}}" in tex and r"\underline{" in tex
    assert r"beta$^\dagger$" in tex and "not a pretrained result" in tex


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.images, self.external = [], {}, []
        self._figure = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self.tables.append(attrs.get("id"))
        if tag == "figure":
            self._figure = attrs.get("id")
        if tag == "img":
            self.images[self._figure] = attrs["src"]
        if tag in {"link", "script"} or (tag == "img" and not attrs["src"].startswith("data:")):
            self.external.append(tag)


def test_html_page_embeds_every_table_and_figure(written):
    _, out, report = written
    parser = _Page()
    parser.feed((out / "report.html").read_text())
    assert parser.tables == ["table-main", "table-degradation"]
    expected = {f"figure-{n}" for n in ("heatmap-alpha", "heatmap-beta", "curve-jpeg", "curve-blur", "hist-alpha", "hist-beta")}
    assert set(parser.images) == expected == {f"figure-{f.name}" for f in report.figures}
    for src in parser.images.values():
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert parser.external == []


def test_metrics_csv_holds_every_subset(written):
    root, out, _ = written
    long = pd.read_csv(out / "metrics.csv")
    acc, _ = _expected(root, "alpha", "g2", "jpeg(q=50)")
    row = long[(long.detector == "alpha") & (long.generator == "g2") & (long.degradation == "jpeg(q=50)") & (long.metric == "acc")]
    assert 100 * row.value.item() == pytest.approx(acc)


def test_report_never_overwrites(written):
    _, out, report = written
    with pytest.raises(DataError, match="already exists"):
        write_report(report, out)


def test_tables_show_the_protocol_cards_headline_metrics(tmp_path):
    """Chameleon's card names real and fake accuracy: the main and degradation tables show them, in the card's
    order, with the numbers the store implies (recall of each class at threshold 0.5)."""
    run_id = storegen.write_run(tmp_path, degradations=("none", "jpeg(q=50)"), metrics=["acc", "real_acc", "fake_acc"])
    report = build_report(load_runs(tmp_path, [run_id]), metrics=("ap",), n_boot=0, with_figures=False)
    main, degradation = report.tables
    assert main.metrics == degradation.metrics == ["acc", "real_acc", "fake_acc"]
    assert "Acc / Real acc / Fake acc" in main.title
    frame = pd.read_parquet(sorted((tmp_path / "predictions").glob("*.parquet")))
    generator = storegen.GENERATORS[0]
    rows = frame[(frame.detector == "alpha") & (frame.generator == generator) & (frame.degradation == "none")]
    called_fake = rows.p_fake > 0.5
    r, c = main.rows.index(("alpha", "g1")), main.columns.index(generator)
    assert main.values[r, c, 1] == pytest.approx(100 * np.mean(~called_fake[rows.label == 0]))
    assert main.values[r, c, 2] == pytest.approx(100 * np.mean(called_fake[rows.label == 1]))
    assert set(report.long["metric"]) == {"acc", "real_acc", "fake_acc", "ap"}  # metrics.csv: the card's and the asked-for
