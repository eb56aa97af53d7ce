"""`predict` on files, folders and CSV lists; scores-only submissions checked against a manifest."""

import numpy as np
import pandas as pd
import pytest
import storegen
import torch
from PIL import Image

from mirage_bench.data.images import open_rgb
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.infra.checkpoint import save_checkpoint
from mirage_bench.errors import CheckpointError, DataError
from mirage_bench.preprocess import eval_transform
from mirage_bench.reports.predict import predict
from mirage_bench.reports.report import build_report
from mirage_bench.reports.submission import submission_evidence


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    torch.manual_seed(0)
    detector = build_tiny("tinycnn")
    save_checkpoint(detector, root / "model.pt", {"threshold": 0.5003})
    save_checkpoint(detector, root / "bare.pt", {})
    rng = np.random.default_rng(0)
    for i in range(3):
        folder = root / "images" / ("a" if i else "b")
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    pd.DataFrame({"path": ["images/b/0.png"]}).to_csv(root / "list.csv", index=False)
    return root, detector.eval()


def test_predict_matches_the_model_on_each_image(model):
    root, detector = model
    out = predict([root / "images" / "a", root / "list.csv"], root / "model.pt").frame
    assert list(out.path) == [str(root / "images/a/1.png"), str(root / "images/a/2.png"), str(root / "images/b/0.png")]
    with torch.no_grad():
        for row in out.itertuples():
            logit = detector(eval_transform(open_rgb(row.path), detector.input_spec)[None]).float()
            assert row.p_fake == pytest.approx(torch.sigmoid(logit).item(), abs=1e-6)
            assert row.label == ("fake" if row.p_fake > 0.5003 else "real")
    assert (out.threshold == 0.5003).all()


def test_predict_refuses_checkpoints_without_threshold_and_missing_files(model):
    root, _ = model
    with pytest.raises(CheckpointError, match="threshold"):
        predict([root / "images"], root / "bare.pt")
    with pytest.raises(DataError, match="neither"):
        predict([root / "nope.png"], root / "model.pt")


def _manifest():
    return {g: storegen.images(g, 10) for g in storegen.GENERATORS}


def _scores(tmp_path, frame, name="scores.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def test_submission_produces_the_same_tables(tmp_path):
    test = _manifest()
    rows = pd.concat(test.values(), ignore_index=True)
    rng = np.random.default_rng(0)
    rows["score"] = np.clip(0.5 + 0.4 * (2 * rows.label - 1) + rng.normal(0, 0.2, len(rows)), 0, 1)
    evidence = submission_evidence(_scores(tmp_path, rows[["rel_path", "score"]]), test, "tiny", 1, name="outside")
    report = build_report(evidence, metrics=("acc", "ap"), n_boot=0, with_figures=False)
    main = report.tables[0]
    for c, generator in enumerate(storegen.GENERATORS):
        part = rows[rows.generator == generator]
        assert main.values[0, c, 0] == pytest.approx(100 * np.mean((part.score > 0.5) == part.label))
    assert main.rows == [("outside", "submitted")]


@pytest.mark.parametrize("change, message", [
    (lambda f: f.iloc[1:], "no score"),
    (lambda f: pd.concat([f, f.iloc[:1]]), "twice"),
    (lambda f: pd.concat([f, f.iloc[:1].assign(rel_path="elsewhere.png")]), "not test images"),
    (lambda f: f.assign(score=f.score * 3), r"outside \[0, 1\].*--scores-are logits"),
])
def test_submission_errors(tmp_path, change, message):
    test = _manifest()
    rows = pd.concat(test.values(), ignore_index=True).assign(score=0.3)[["rel_path", "score"]]
    rows.loc[0, "score"] = 0.9
    with pytest.raises(DataError, match=message):
        submission_evidence(_scores(tmp_path, change(rows)), test, "tiny", 1)


def test_submission_logits_are_taken_as_said(tmp_path):
    test = _manifest()
    rows = pd.concat(test.values(), ignore_index=True).assign(score=lambda f: 4.0 * (2 * f.label - 1))
    evidence = submission_evidence(_scores(tmp_path, rows[["image_id", "score"]]), test, "tiny", 1, scores_are="logits")
    assert evidence.predictions.p_fake.between(0, 1).all()
    assert (evidence.predictions.p_fake > 0.5).eq(evidence.predictions.label == 1).all()


def test_score_file_reports_in_the_protocol_cards_metrics(tmp_path, monkeypatch):
    """The CLI end to end on the shipped mini set, with a copy of the mini card that asks for real and fake accuracy."""
    import yaml
    from typer.testing import CliRunner

    from mirage_bench.cli import app
    from mirage_bench.cli.console import console
    from mirage_bench.protocol import load_protocol
    from mirage_bench.reports.submission import protocol_test_sets

    monkeypatch.setattr(console, "width", 250)
    card = load_protocol("mini").model_dump(mode="json") | {"metrics": ["acc", "real_acc", "fake_acc"]}
    (tmp_path / "mini.yaml").write_text(yaml.safe_dump(card))
    _, test = protocol_test_sets("mini")
    rows = pd.concat(test.values(), ignore_index=True)
    rows["score"] = np.where(rows.label == 1, 0.9, np.where(rows.index % 4 == 0, 0.7, 0.2))  # a quarter of reals called fake
    result = CliRunner().invoke(app, ["score-file", str(_scores(tmp_path, rows[["rel_path", "score"]])), "--protocol",
                                      str(tmp_path / "mini.yaml"), "--out", str(tmp_path / "report"), "--bootstrap", "0"])
    assert result.exit_code == 0, result.output
    assert "Acc / Real acc / Fake acc" in result.output
    main = pd.read_csv(tmp_path / "report" / "main.csv").set_index("detector")
    reals = rows[rows.label == 0]
    expected = np.mean([100 * np.mean(part.score <= 0.5) for _, part in reals.groupby("generator")])
    assert main.loc["submission", "mean/real_acc"] == pytest.approx(expected)
    assert main.loc["submission", "mean/fake_acc"] == pytest.approx(100.0)
