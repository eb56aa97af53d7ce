"""Scores-only submissions: per-image scores from any detector, checked against a protocol's test manifest.

The file is a CSV with an image key (``image_id``, or ``rel_path`` as the protocol's data root names
it), a ``score`` column and optionally ``degradation`` (default ``none``). Scores are probabilities
of "fake" in [0, 1] unless the submitter says they are logits; values are never used to guess which.
Every test image must be scored exactly once per degradation: missing, extra and duplicated rows are
errors. The result is an :class:`~mirage_bench.reports.runs.Evidence`, so the same tables follow.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import pandas as pd

from mirage_bench.data import build_manifest, protocol_subsets
from mirage_bench.data.manifest import read_manifest
from mirage_bench.errors import DataError
from mirage_bench.hashing import digest, frame_hash
from mirage_bench.mini import default_root
from mirage_bench.protocol import HEADLINE_METRICS, ProtocolCard, load_protocol
from mirage_bench.reports.cells import frame_cells
from mirage_bench.reports.runs import Evidence
from mirage_bench.store import PREDICTION_COLUMNS

ScoresAre = Literal["probabilities", "logits"]
KEYS = ("image_id", "rel_path")


def _examples(frame: pd.DataFrame, key: str) -> str:
    return ", ".join(map(str, frame[key].head(3))) + (" ..." if len(frame) > 3 else "")


def read_scores(path: str | Path, scores_are: ScoresAre = "probabilities") -> tuple[pd.DataFrame, str]:
    """The file with ``p_fake`` added; returns it and the key column it uses."""
    frame = pd.read_csv(path, dtype={"image_id": str, "rel_path": str, "degradation": str})
    key = next((k for k in KEYS if k in frame.columns), None)
    if key is None or "score" not in frame.columns:
        raise DataError(f"scores file {path} has columns {list(frame.columns)}; it needs 'image_id' or 'rel_path' and 'score'")
    if "degradation" not in frame.columns:
        frame["degradation"] = "none"
    scores = pd.to_numeric(frame["score"], errors="coerce")
    bad = frame[~np.isfinite(scores)]
    if len(bad):
        raise DataError(f"scores file {path}: {len(bad)} scores are not finite numbers ({_examples(bad, key)})")
    if scores_are == "probabilities":
        outside = frame[(scores < 0) | (scores > 1)]
        if len(outside):
            raise DataError(f"scores file {path}: {len(outside)} scores lie outside [0, 1] (e.g. {scores[outside.index[0]]!r} for "
                            f"{outside[key].iloc[0]}); scores must be probabilities of 'fake'. If they are logits, "
                            "pass --scores-are logits")
        frame["p_fake"], frame["logit"] = scores, np.nan
    else:
        frame["p_fake"], frame["logit"] = 1 / (1 + np.exp(-scores)), scores
    return frame, key


def match_to_manifest(scores: pd.DataFrame, key: str, test: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Join scores to the protocol's test images; any missing, extra or duplicated image is an error."""
    manifest = pd.concat([m.assign(generator=g) for g, m in test.items()], ignore_index=True)
    dup = scores[scores.duplicated([key, "degradation"], keep=False)]
    if len(dup):
        raise DataError(f"{len(dup)} rows score the same image twice under one degradation ({_examples(dup, key)}); keep one row each")
    extra = scores[~scores[key].isin(manifest[key])]
    if len(extra):
        raise DataError(f"{len(extra)} scored images are not test images of the protocol ({_examples(extra, key)}); "
                        f"remove them or check that the {key} values are written as the protocol's data root names them")
    merged = manifest.merge(scores[[key, "degradation", "p_fake", "logit"]], on=key, how="inner")
    for spec, part in merged.groupby("degradation", sort=True):
        missing = manifest[~manifest[key].isin(part[key])]
        if len(missing):
            raise DataError(f"{len(missing)} test images have no score under degradation {spec!r} ({_examples(missing, key)}); "
                            "every test image must be scored")
    return merged


def submission_evidence(scores_path: str | Path, test: dict[str, pd.DataFrame], protocol: str, version: int,
                        name: str = "submission", threshold: float | None = None, scores_are: ScoresAre = "probabilities",
                        metrics: Sequence[str] = HEADLINE_METRICS) -> Evidence:
    """The submitted scores as store-shaped predictions of one detector, ready for the report (tables in the
    protocol card's ``metrics``)."""
    scores, key = read_scores(scores_path, scores_are)
    merged = match_to_manifest(scores, key, test)
    file_hash = hashlib.sha256(Path(scores_path).read_bytes()).hexdigest()
    test_hash = digest({"test": {g: frame_hash(m) for g, m in test.items()}})[:16]
    merged = merged.assign(
        run_id="submission", detector=name, recipe_hash="", train_generators="submitted", seed=0, checkpoint_sha256=file_hash,
        degradation_seed=0, threshold=np.nan if threshold is None else float(threshold), impl="submitted", random_backbone=False)
    merged["cell_id"] = [digest([file_hash, g, d])[:20] for g, d in zip(merged["generator"], merged["degradation"])]
    return Evidence(frame_cells(merged[PREDICTION_COLUMNS].assign(reconstruction=False)), protocol, version, f"test:{test_hash}", ["submission"], [], list(test), [],
                    list(metrics))


def protocol_test_sets(protocol: str, data_root: str | Path | None = None, manifest: str | Path | None = None,
                       protocol_dirs: tuple = ()) -> tuple[ProtocolCard, dict[str, pd.DataFrame]]:
    """The protocol's test subsets, from a manifest file or by indexing the data root (mini: its shipped root)."""
    card = load_protocol(protocol, (), protocol_dirs)
    if manifest is not None:
        frame = read_manifest(manifest)
    else:
        if data_root is None:
            if not card.name.startswith("mini"):
                raise DataError(f"protocol {card.name!r} needs its data to check a submission: pass --data-root DIR or --manifest FILE")

            data_root = default_root()
        frame, _ = build_manifest(Path(data_root), card.layout, card, roles=("test",))
    return card, protocol_subsets(card, frame, roles=("test",)).test
