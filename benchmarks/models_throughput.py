"""Several models on one test subset: one pass per model against one pass for all (one decode per image).

A run scores every checkpoint (detector x training set x seed) on every test subset under the whole
degradation grid. Until 2026-11-27 each checkpoint had a pass of its own, so every image was decoded and
degraded once per checkpoint; now the checkpoints of a subset share a pass (``ReferenceScorer.score``,
``FastScorer.score``), and checkpoints holding one frozen encoder (UnivFD's, CoOp's) run it once. This times
both on a generated folder (half JPEG 500x375, half PNG 512x512, as ``eval_throughput.py``) under ``none`` +
the ``genimage`` grid, in one run on one machine, and checks that each model's logits are the same either way.
Rates count scored (image, degradation, model) triples.

    python benchmarks/models_throughput.py --device cuda --detectors cnnspot,npr,univfd --images 1024
    python benchmarks/models_throughput.py --device cuda --detectors univfd,univfd,univfd --images 512  # 3 seeds
    python benchmarks/models_throughput.py --device cpu --detectors tinycnn,npr-mini,cnnspot-mini --images 64
    python benchmarks/models_throughput.py --device cuda --detectors npr --images 512 --varied --size-order
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from eval_throughput import make_folder, print_table, sync


def build_models(cards: list[str], device: torch.device, extra: list[str]) -> list:
    """One model per card, random weights (seeded by position, so repeated cards give distinct models)."""
    from mirage_bench.cards import load_recipe
    from mirage_bench.detectors.infra.build import build_detector

    models = []
    for k, card in enumerate(cards):
        overrides = ["backbone.pretrained=none"] if load_recipe(card).backbone is not None else []
        torch.manual_seed(k)
        models.append(build_detector(load_recipe(card, [*overrides, *extra])).to(device).eval())
    return models


def score(models: list, manifest, degradations, device: torch.device, batch: int, workers: int, fast: bool) -> list[np.ndarray]:
    """Each model's ``[D, N]`` logits from one pass over the subset for all of ``models``."""
    from mirage_bench.scoring import FastScorer, ReferenceScorer

    if fast:
        scorer = FastScorer(device, batch_size=batch, workers=workers, bf16=device.type == "cuda")
    else:
        scorer = ReferenceScorer(device, batch_size=batch, workers=workers)
    scored = scorer.score(models, manifest, degradations)
    sync(device)
    return [s.logits for s in scored]


def max_difference(first: list[np.ndarray], second: list[np.ndarray]) -> float:
    """The largest |logit difference| between two scorings, over every model."""
    return max(float(np.max(np.abs(x - y))) if x.size else 0.0 for x, y in zip(first, second))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--detectors", default="cnnspot,npr,univfd", help="cards, comma-separated (repeats allowed)")
    parser.add_argument("--set", action="append", default=[], help="override for every card (e.g. input.size=32)")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=max(1, min(16, os.cpu_count() or 2) - 1))
    parser.add_argument("--impl", choices=("auto", "fast", "reference"), default="auto",
                        help="auto: the fast path on CUDA and the reference on a CPU (as mirage-bench run)")
    parser.add_argument("--varied", action="store_true", help="JPEG reals of varied sizes (ImageNet-like) instead of 500x375")
    parser.add_argument("--size-order", action="store_true",
                        help="row (c): one pass for all with the images in size order, so that a detector reading native "
                             "resolution (NPR) gets one forward per size for many images, not one per size and batch")
    args = parser.parse_args()

    from mirage_bench.degradations import expand

    device = torch.device(args.device)
    fast = args.impl == "fast" or (args.impl == "auto" and device.type == "cuda")
    cards = [c.strip() for c in args.detectors.split(",") if c.strip()]
    models = build_models(cards, device, args.set)
    degradations = expand(["none", "genimage"])
    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_folder(Path(tmp), args.images, varied=args.varied)
        triples = len(manifest) * len(degradations) * len(models)
        score(models[:1], manifest.iloc[: min(len(manifest), 2 * args.batch)], degradations, device, args.batch, args.workers, fast)  # warm-up
        start = time.perf_counter()
        apart = [score([model], manifest, degradations, device, args.batch, args.workers, fast)[0] for model in models]
        a = triples / (time.perf_counter() - start)
        start = time.perf_counter()
        together = score(models, manifest, degradations, device, args.batch, args.workers, fast)
        b = triples / (time.perf_counter() - start)
        if args.size_order:
            order = np.lexsort((manifest["width"].to_numpy(), manifest["height"].to_numpy()))  # by height, then width
            start = time.perf_counter()
            sized = score(models, manifest.iloc[order].reset_index(drop=True), degradations, device, args.batch, args.workers, fast)
            c = triples / (time.perf_counter() - start)
            back = np.argsort(order)
            sized = [logits[:, back] for logits in sized]  # manifest order again, to compare with (a)
    diff = max_difference(apart, together)
    from mirage_bench.scoring.scorer import distinct_specs
    from mirage_bench.scoring.trunks import model_trunks

    specs, spec_of = distinct_specs(models)
    trunks = len(model_trunks(models, spec_of))
    path = "fast" if fast else "reference"
    sizes = manifest[["width", "height"]].drop_duplicates().shape[0]
    grid = (f"{len(degradations)} degradations, {args.images} images of {sizes} sizes, {len(models)} models "
            f"({', '.join(cards)})")
    rows.append(("(a) one pass per model (before)", f"{a:,.1f}", "1.00", "-", f"{path}; {grid}"))
    rows.append(("(b) one pass for all models", f"{b:,.1f}", f"{b / a:.2f}", f"{diff:.3g}",
                 f"{path}; one decode and one degradation per image, {len(specs)} preprocessing(s), {trunks} model "
                 f"forward(s) (models sharing a frozen encoder run it once); max |logit (b) - (a)| over every model"))
    if args.size_order:
        diff_c = max_difference(apart, sized)
        rows.append(("(c) one pass for all, images in size order", f"{c:,.1f}", f"{c / a:.2f}", f"{diff_c:.3g}",
                     f"{path}; as (b), the manifest sorted by height and width (today's runs keep manifest order)"))
    for row in rows:
        print(" | ".join(row), flush=True)
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print_table(f"Several models per test subset on {name}, torch {torch.__version__}",
                ("row", "triples/s", "vs (a)", "max |diff|", "setting"), rows)


if __name__ == "__main__":
    main()
