"""Scoring a published checkpoint on a protocol's test subsets and setting it beside the authors' own numbers.

The published numbers are data in the card (with the table they come from), never asserted: a difference beyond
the card's tolerance is flagged for a person to look at (other test images, another preprocessing, a wrong file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from mirage_bench.data import build_manifest, protocol_subsets
from mirage_bench.degradations import expand
from mirage_bench.errors import ConfigError, DataError
from mirage_bench.metrics import compute
from mirage_bench.protocol import load_protocol
from mirage_bench.scoring import ReferenceScorer
from mirage_bench.zoo.card import PublishedCard, Reproduction
from mirage_bench.zoo.load import load_published_detector


def reproduction_of(card: PublishedCard, protocol: str | None) -> Reproduction:
    """The card's published numbers on ``protocol`` (or on its only protocol)."""
    known = {r.protocol: r for r in card.reproduction}
    if not known:
        raise ConfigError(f"published card {card.name!r} holds no published numbers to reproduce (no 'reproduction' section)")
    if protocol is None:
        if len(known) > 1:
            raise ConfigError(f"published card {card.name!r} has numbers for {', '.join(known)}: pass --protocol")
        protocol = next(iter(known))
    if protocol not in known:
        raise ConfigError(f"published card {card.name!r} has no numbers for protocol {protocol!r}; it has: {', '.join(known)}")
    return known[protocol]


def read_test_subsets(protocol: str, data_root: str | Path, subsets: Sequence[str], workers: int = 1) -> dict[str, pd.DataFrame]:
    """The protocol's test manifests of ``subsets`` read from ``data_root``; a subset the data lack is refused by name."""
    card = load_protocol(protocol)
    manifest, exclusions = build_manifest(Path(data_root), card.layout, card, roles=("test",), workers=workers)
    test = protocol_subsets(card, manifest, exclusions, roles=("test",)).test
    missing = [s for s in subsets if s not in test]
    if missing:
        raise DataError(f"the published numbers name test subsets that protocol {protocol!r} does not read from {data_root}: "
                        f"{', '.join(missing)} (it reads {', '.join(test)})")
    return {s: test[s] for s in subsets}


def reproduce(card: PublishedCard, data_root: str | Path, protocol: str | None = None, weights: str | Path | None = None,
              offline: bool = False, overrides: Sequence[str] = (), device: str = "cpu", batch_size: int = 64,
              workers: int = 0) -> pd.DataFrame:
    """One row per generator the paper reports: ours, the paper's and the difference (points) for acc and AP."""
    published = reproduction_of(card, protocol)
    subsets = read_test_subsets(published.protocol, data_root, [s.subset for s in published.scores], max(1, workers))
    detector = load_published_detector(card, weights, offline, overrides).to(device)
    clean = expand(["none"])
    rows = []
    for paper in published.scores:
        manifest = subsets[paper.subset]
        logits = ReferenceScorer(device, batch_size=batch_size, workers=workers).score_one(detector, manifest, clean).logits[0]
        p_fake = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
        ours = {m: 100.0 * compute(m, manifest["label"], p_fake, where=f" on {paper.subset}") for m in ("acc", "ap")}
        row = {"generator": paper.subset, "images": len(manifest)}
        for metric in ("acc", "ap"):
            theirs = getattr(paper, metric)
            row |= {f"{metric} ours": ours[metric], f"{metric} paper": theirs,
                    f"{metric} diff": np.nan if theirs is None else ours[metric] - theirs}
        diffs = [row[f"{m} diff"] for m in ("acc", "ap")]
        row["beyond tolerance"] = any(abs(d) > published.tolerance for d in diffs if not np.isnan(d))
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame.attrs.update(source=published.source, tolerance=published.tolerance, protocol=published.protocol, label=card.label,
                       random_backbone=detector.random_backbone)
    return frame
