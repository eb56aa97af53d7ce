"""The quality report of a built mini set: every check of :mod:`mirage_bench.mini.checks` per generator, with the
training crops redrawn from the set's card (which is why it stands above both ``build`` and ``checks``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from mirage_bench.mini.build import MiniConfig, training_pool
from mirage_bench.mini.checks import colour_separability, load_pixels, loss_fell, nearest_rms, reconstruction_rms, select
from mirage_bench.mini.manifest import read_manifest


def quality_report(root: Path | str) -> dict[str, Any]:
    """Every check above, per generator, for a built set (the training crops are redrawn from the card)."""
    root = Path(root)
    card = json.loads((root / "card.json").read_text(encoding="utf-8"))
    config = MiniConfig.model_validate(card["config"])
    records = read_manifest(root)
    _, pool = training_pool(config)
    report: dict[str, Any] = {"version": card["version"]}
    val_reals = load_pixels(root, [r for r in records if r.split == "val" and r.label == 0])
    report["real_val_to_training_rms_min"] = float(nearest_rms(val_reals, pool).min())
    for generator in card["generators"]:
        fakes = select(records, generator, label=1)
        entry: dict[str, Any] = {"loss_fell": loss_fell(card, generator)}
        nn_rms = nearest_rms(load_pixels(root, fakes), pool)
        entry["nearest_training_rms"] = {"min": float(nn_rms.min()), "median": float(np.median(nn_rms))}
        if all(r.source == "reconstruction" for r in fakes):
            own = reconstruction_rms(root, fakes, config.size)
            entry["source_rms"] = {"min": float(own.min()), "median": float(np.median(own))}
        entry["colour_logreg_accuracy"] = colour_separability(root, records, generator)
        report[generator] = entry
    return report
