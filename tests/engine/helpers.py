"""Tiny hand-built benchmarks for the engine tests: PNG trees in tmp_path, manifests, cards."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
from PIL import Image

from mirage_bench.cards import load_recipe
from mirage_bench.config import RecipeCard
from mirage_bench.engine.runner import Benchmark, Subsets
from mirage_bench.degradations import expand
from mirage_bench.protocol import ProtocolCard

TINY = ("params.width=4", "params.stages=2", "input.size=16", "train.batch_size=4")


def write_images(root: Path, generator: str, split: str, n_real: int, n_fake: int, seed: int) -> pd.DataFrame:
    """PNG files (20 px); fakes carry a faint checkerboard so that a model can learn something."""
    rng = np.random.default_rng(seed)
    rows = []
    for label, n in ((0, n_real), (1, n_fake)):
        for i in range(n):
            pixels = rng.normal(128, 30, (20, 20, 3))
            if label:
                pixels += 25 * ((np.indices((20, 20)).sum(axis=0) % 2)[..., None] - 0.5)
            rel = f"{generator}/{split}/{'ai' if label else 'nature'}/{i:03d}.png"
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(path)
            data = path.read_bytes()
            rows.append({"image_id": hashlib.sha256(rel.encode()).hexdigest()[:16], "path": str(path), "rel_path": rel,
                         "label": label, "generator": generator, "family": "gan" if generator == "g1" else "diffusion",
                         "split": split, "width": 20, "height": 20, "format": "PNG", "bytes": len(data),
                         "sha256": hashlib.sha256(data).hexdigest()})
    return pd.DataFrame(rows).sort_values("rel_path", ignore_index=True)


def write_png(path: Path, seed: int, side: int = 20) -> Path:
    """One PNG of seeded noise (its content, hence its sha256, is a function of ``seed``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8)).save(path)
    return path


def protocol_card(test: Sequence[str] = ("g1", "g2")) -> ProtocolCard:
    return ProtocolCard(name="tiny", version=1, layout="genimage", train=["g1"], test=list(test),
                        generators={g: {"folder": g, "family": "gan" if g == "g1" else "diffusion"} for g in ("g1", "g2")})


def recipe(*overrides: str) -> RecipeCard:
    return load_recipe("tinycnn", [*TINY, "train.epochs=2", *overrides])


def benchmark(root: Path, seeds: Sequence[int] = (0,), overrides: Sequence[str] = ()) -> Benchmark:
    subsets = Subsets(
        train={"g1": write_images(root, "g1", "train", 8, 8, 1)},
        validation={"g1": write_images(root, "g1", "trainval", 4, 4, 2)},
        test={"g1": write_images(root, "g1", "val", 5, 4, 3), "g2": write_images(root, "g2", "val", 3, 4, 4)},
    )
    return Benchmark(protocol_card(), subsets, [recipe(*overrides)], expand(["none", "jpeg(q=50)"]), list(seeds))


def stored_logits(out: Path) -> pd.DataFrame:
    """Every stored prediction's logit and p_fake by (image, cell), in a fixed order: what two runs must agree on."""
    from mirage_bench.store import Store

    frame = Store(out).read_predictions()
    return frame.sort_values(["image_id", "cell_id"], ignore_index=True)[["image_id", "cell_id", "logit", "p_fake"]]


def assert_same_scores(actual: pd.DataFrame, expected: pd.DataFrame) -> None:
    """Two runs' ``stored_logits`` agree: bit for bit under PyTorch's vectorised CPU kernels (AVX2, AVX-512), whose
    results do not depend on the batch; to float rounding (1e-6) under its portable kernels
    (``ATEN_CPU_CAPABILITY=default``), which round about 1 logit in 30 differently (measured: by 1e-8) when a
    resumed pass batches other images together."""
    import torch

    exact = torch.backends.cpu.get_cpu_capability() != "DEFAULT"
    pd.testing.assert_frame_equal(actual, expected, check_exact=exact, rtol=1e-6, atol=1e-6)
