"""Checks that a mini set's fakes are learned, not copies or noise, and not trivially separable by colour.

- ``loss_fell``: each generator's training objective fell; for the GAN, whose adversarial losses need not
  fall (D and G balance each other), its samples' sliced Wasserstein distance to the training crops.
- ``nearest_training_distance``: RMS pixel distance (0..1 scale) of every sampled fake to its nearest
  training crop (copies would be near 0); a reconstruction's distance to its own source crop instead.
- ``colour_separability``: accuracy of a logistic regression on colour histograms alone, fake vs real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mirage_bench.mini.manifest import ImageRecord
from mirage_bench.mini.photos import Crop


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, projections: int = 128, seed: int = 0) -> float:
    """Mean 1-D Wasserstein distance between ``a`` and ``b`` (``[N, D]``, same N) over random directions."""
    directions = np.random.default_rng(seed).standard_normal((a.shape[1], projections))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    pa, pb = np.sort(a @ directions, axis=0), np.sort(b @ directions, axis=0)
    return float(np.abs(pa - pb).mean())


def load_pixels(root: Path, records: list[ImageRecord]) -> np.ndarray:
    """``[N, S, S, 3]`` uint8 pixels of ``records``."""
    arrays = []
    for record in records:
        with Image.open(Path(root) / record.rel_path) as image:
            arrays.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
    return np.stack(arrays)


def select(records: list[ImageRecord], generator: str, split: str | None = None, label: int | None = None) -> list[ImageRecord]:
    return [r for r in records if r.generator == generator and (split is None or r.split == split)
            and (label is None or r.label == label)]


def nearest_rms(images: np.ndarray, pool: np.ndarray, chunk: int = 256) -> np.ndarray:
    """RMS distance (0..1 pixel scale) from each image to its nearest neighbour in ``pool``."""
    a = images.reshape(len(images), -1).astype(np.float64) / 255.0
    b = pool.reshape(len(pool), -1).astype(np.float64) / 255.0
    b_sq = (b ** 2).sum(1)
    out = []
    for i in range(0, len(a), chunk):
        part = a[i:i + chunk]
        d2 = (part ** 2).sum(1)[:, None] + b_sq[None] - 2 * part @ b.T
        out.append(np.sqrt(np.maximum(d2.min(1), 0) / a.shape[1]))
    return np.concatenate(out)


def reconstruction_rms(root: Path, records: list[ImageRecord], size: int) -> np.ndarray:
    """RMS distance of each reconstruction to the crop it reconstructs (redrawn from the manifest)."""
    fakes = load_pixels(root, records).astype(np.float64) / 255.0
    sources = np.stack([Crop(r.photo, r.view, r.left, r.top, r.side).render(size) for r in records]) / 255.0
    return np.sqrt(((fakes - sources) ** 2).reshape(len(records), -1).mean(1))


def colour_histograms(pixels: np.ndarray, bins: int = 4) -> np.ndarray:
    """Joint RGB histogram (``bins``^3 cells) plus 16-bin per-channel histograms, each normalised to sum 1."""
    flat = pixels.reshape(len(pixels), -1, 3).astype(np.int64)
    q = flat * bins // 256
    joint = q[..., 0] * bins * bins + q[..., 1] * bins + q[..., 2]
    feats = [np.stack([np.bincount(row, minlength=bins ** 3) for row in joint])]
    for c in range(3):
        feats.append(np.stack([np.bincount(row, minlength=16) for row in flat[..., c] * 16 // 256]))
    return np.concatenate([f / f.sum(1, keepdims=True) for f in feats], axis=1)


def colour_separability(root: Path, records: list[ImageRecord], generator: str) -> dict[str, float]:
    """Logistic regression on colour histograms, fake vs real of one generator subset.

    ``cv_train``: 5-fold cross-validated accuracy within the train split (same photos on both sides);
    ``train_to_val``: fitted on the train split, scored on the val split.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def xy(split: str) -> tuple[np.ndarray, np.ndarray]:
        rows = select(records, generator, split)
        return colour_histograms(load_pixels(root, rows)), np.array([r.label for r in rows])

    (x_train, y_train), (x_val, y_val) = xy("train"), xy("val")
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0))
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    cv = float(cross_val_score(model, x_train, y_train, cv=folds).mean())
    held_out = float(model.fit(x_train, y_train).score(x_val, y_val))
    return {"cv_train": cv, "train_to_val": held_out}


def loss_fell(card: dict[str, Any], generator: str) -> bool:
    """The generator's objective fell; a GAN's samples' distance to the training crops fell instead."""
    entry = card["generators"][generator]
    if entry["family"] == "gan":
        swd = entry["swd_to_training_crops"]
        return swd["final"] < swd["initial"]
    loss = entry["losses"][entry["objective"]]
    return loss["last"] < loss["first"]
