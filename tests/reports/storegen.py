"""A small generated prediction store with run records, written through the engine's Store."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from mirage_bench.hashing import digest
from mirage_bench.store import PREDICTION_COLUMNS, Store, write_json

GENERATORS = ("g1", "g2", "g3")
DEGRADATIONS = ("none", "jpeg(q=50)", "jpeg(q=90)", "blur(s=1)", "blur(s=2)")


def images(generator: str, n: int = 20, fakes_only: bool = False) -> pd.DataFrame:
    rows = []
    for i in range(n):
        label = 1 if fakes_only else i % 2
        rel = f"{generator}/val/{'ai' if label else 'nature'}/{i:03d}.png"
        rows.append({"image_id": hashlib.sha256(rel.encode()).hexdigest()[:16], "rel_path": rel, "path": "/nonexistent/" + rel,
                     "sha256": hashlib.sha256(f"content {rel}".encode()).hexdigest(), "label": label,
                     "generator": generator, "family": "gan" if generator == "g1" else "diffusion"})
    return pd.DataFrame(rows)


def write_run(root: Path, detectors: Sequence[str] = ("alpha", "beta"), seeds: Sequence[int] = (0,),
              degradations: Sequence[str] = DEGRADATIONS, random: Sequence[str] = (), version: int = 1,
              data_salt: str = "", strength: dict[str, float] | None = None, n: int = 20, rng_seed: int = 0,
              train_sets: Sequence[str] = ("g1",), recipe: str = "", impl: str = "reference", threshold: float = 0.45,
              checkpoint: str = "c", fakes_only: Sequence[str] = (), metrics: Sequence[str] = ("acc", "ap"),
              reconstruction: Sequence[str] = ()) -> str:
    """One finished run; returns its id. Detector d separates classes by ``strength[d]`` logits.

    ``recipe`` is appended to each detector's recipe hash (a ``--set`` variant); ``fakes_only`` generators have no reals;
    ``metrics``: the protocol card's headline metrics; ``reconstruction``: detectors whose recorded recipe says so.
    """
    store = Store(root)
    run_id = store.new_run_id()
    rng = np.random.default_rng(rng_seed)
    strength = strength or {d: 2.0 + i for i, d in enumerate(detectors)}
    eval_cells = []
    for detector in detectors:
        for train in train_sets:
            for seed in seeds:
                for generator in GENERATORS:
                    subset = images(generator, n, generator in fakes_only)
                    for k, spec in enumerate(degradations):
                        cell_id = digest([run_id, detector, train, seed, generator, spec])[:20]
                        shift = strength[detector] / (1 + k)
                        logits = (2 * subset["label"].to_numpy() - 1) * shift + rng.normal(0, 1.5, len(subset))
                        frame = subset.assign(
                            run_id=run_id, cell_id=cell_id, detector=detector, recipe_hash="r" + detector + recipe,
                            train_generators=train, seed=seed, checkpoint_sha256=checkpoint,
                            degradation=spec, degradation_seed=0, logit=logits.astype(np.float32),
                            p_fake=(1 / (1 + np.exp(-logits))).astype(np.float32), threshold=threshold, impl=impl,
                            random_backbone=detector in random)
                        store.write_predictions(cell_id, frame[PREDICTION_COLUMNS])
                        eval_cells.append({"cell_id": cell_id, "generator": generator, "degradation": spec, "images": len(subset)})
    record = {"run_id": run_id, "device": "cpu: 2 CPU threads", "world_size": 1,
              "protocol": {"name": "tiny", "version": version, "card": {"name": "tiny", "test": list(GENERATORS), "metrics": list(metrics)}},
              "data": {"train": {"g1": "h1" + data_salt}, "validation": {"g1": "h2"}, "test": {g: "t" + g for g in GENERATORS}},
              "train_cells": [], "eval_cells": eval_cells, "seeds": list(seeds),
              "recipes": {d: {"name": d, "reconstruction": d in reconstruction, "tags": []} for d in detectors}}
    write_json(store.run_dir(run_id) / "record.json", record)
    return run_id
