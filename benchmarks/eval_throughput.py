"""Evaluation throughput: model-only vs our end-to-end path vs the field's naive loop, in one run.

Rows (all on the same machine, model, batch size and dtype, random backbone weights):
  (a) model-only forward, images/s: random input already on the device, warmed up, synchronised.
  (b) our end-to-end evaluation (``--impl auto``: fast on CUDA, reference on CPU) over a generated folder of
      half JPEG (500x375) and half PNG (512x512) images under the ``genimage`` degradation grid plus the clean
      image, counted as scored (image, degradation) pairs per second: one decode per image for the grid.
      On CUDA also (b0): the same call with each batch copied to the device on the compute stream, behind the
      previous batch's forwards, instead of on a stream of its own (the baseline of ``on_device``'s copy stream).
  (c) the naive loop of the field's scripts: for each degradation a DataLoader over all cores that opens
      the file with PIL, degrades it, preprocesses it on the CPU, then the model.
  (d) the fast path's data stage alone: workers decode and apply the CPU-only degradations, chunks reach
      the device; no model. Its ceiling on (b).
  (e) the fast path without the model: (d) plus the device's degradations and preprocessing. With (a), it
      tells where (b) loses time: these device stages share the model's stream.
  (f) CUDA only: clean images alone, decoded by PIL in the workers, then (f') by nvjpeg on the GPU
      (``--impl fast-nvjpeg``, which needs a grid that runs entirely on the device).
Also: a training-throughput line per prompt-learning detector (images/s, peak memory); with ``--profile N``, row
(b)'s call on N images under torch.profiler (the ops with the most device time, and how busy the device was).

    python benchmarks/eval_throughput.py --device cuda --images 768            # H100: under 5 minutes
    python benchmarks/eval_throughput.py --device cpu --images 24 --backbone mb-tiny-clip --size 32
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset


def make_image(root: Path, k: int, seed: int = 0, varied: bool = False) -> dict[str, str | int]:
    """Image ``k`` of the folder: even ``k`` a JPEG (q 90, 500x375, ImageNet-like reals), odd ``k`` a PNG
    (512x512, SD-like fakes); smooth colour blobs plus grain, so the codecs work as on photos. ``varied``: the
    JPEGs take sizes from 300x250 to 500x500, as ImageNet's photos do, so few share a size (the GPU then
    degrades them one by one). Seeded per image, so the folder does not depend on how many processes build it."""
    rng = np.random.default_rng([seed, k])
    jpeg = k % 2 == 0
    w, h = (512, 512) if not jpeg else (int(rng.integers(300, 501)), int(rng.integers(250, 501))) if varied else (500, 375)
    coarse = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((w, h), Image.BICUBIC)
    noisy = np.clip(np.asarray(image).astype(np.int16) + rng.integers(-12, 13, (h, w, 3)), 0, 255).astype(np.uint8)
    path = root / f"img{k:05d}.{'jpg' if jpeg else 'png'}"
    Image.fromarray(noisy).save(path, quality=90) if jpeg else Image.fromarray(noisy).save(path)
    return {"path": str(path), "image_id": f"bench-{k}", "width": w, "height": h}  # sizes, as a scanned manifest has


def make_folder(root: Path, n: int, seed: int = 0, varied: bool = False) -> pd.DataFrame:
    """The benchmark's n images (``make_image``), built on all cores (about 28 ms per image on one)."""
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        rows = list(pool.map(make_image, [root] * n, range(n), [seed] * n, [varied] * n, chunksize=16))
    return pd.DataFrame(rows)


def build(card: str, backbone: str | None, size: int | None, device: torch.device, extra: list[str] = ()):
    from mirage_bench.cards import load_recipe
    from mirage_bench.detectors.infra.build import build_detector

    overrides = ["backbone.pretrained=none"] if load_recipe(card).backbone is not None else []
    if backbone:
        overrides.append(f"backbone.name={backbone}")
    if size:
        overrides += [f"input.size={size}", f"input.resize={size}"]
    torch.manual_seed(0)
    return build_detector(load_recipe(card, [*overrides, *extra])).to(device).eval()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def model_only(model, size: int, device: torch.device, batch: int, iters: int, bf16: bool) -> float:
    x = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=torch.channels_last)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    with autocast:
        for _ in range(3):
            model(x)
        sync(device)
        start = time.perf_counter()
        for _ in range(iters):
            model(x)
        sync(device)
    return batch * iters / (time.perf_counter() - start)


def print_table(title: str, columns: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*row)
    Console(width=160).print(table)


class NaiveImages(Dataset):
    """What the field's eval scripts do: open with PIL, degrade, preprocess, per image, per degradation."""

    def __init__(self, manifest: pd.DataFrame, degradation, spec) -> None:
        self.paths, self.ids, self.degradation, self.spec = manifest["path"].tolist(), manifest["image_id"].tolist(), degradation, spec

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        from mirage_bench.degradations import image_seed
        from mirage_bench.preprocess import eval_transform

        image = Image.open(self.paths[i]).convert("RGB")
        return eval_transform(self.degradation.apply(image, image_seed(0, self.ids[i])), self.spec)


@torch.no_grad()
def naive_loop(detector, manifest, degradations, device, batch: int, workers: int, bf16: bool) -> float:
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    start = time.perf_counter()
    for d in degradations:
        loader = DataLoader(NaiveImages(manifest, d, detector.input_spec), batch_size=batch, num_workers=workers)
        for x in loader:
            with autocast:
                detector(x.to(device)).float().cpu()
    sync(device)
    return len(manifest) * len(degradations) / (time.perf_counter() - start)


def ours(detector, manifest, degradations, device, batch: int, workers: int, bf16: bool, impl: str, compile_model: bool = False,
         copy_stream: bool = True) -> tuple[float, float, str]:
    """Pairs/s of the whole call, the seconds until the first batch was handed to the model (worker start-up
    and the first batch's decoding: the device idles meanwhile, a cost that a small folder feels more than a
    dataset does), and the implementation."""
    from mirage_bench.scoring import FastScorer, ReferenceScorer

    first: list[float] = []

    def on_batch(_: int) -> None:
        if not first:
            first.append(time.perf_counter())

    start = time.perf_counter()
    if impl in ("fast", "fast-nvjpeg") or (impl == "auto" and device.type == "cuda"):
        scorer = FastScorer(device, batch_size=batch, workers=workers, bf16=bf16, nvjpeg=impl == "fast-nvjpeg", compile=compile_model,
                            copy_stream=copy_stream)
        impls = scorer.score_one(detector, manifest, degradations, on_batch=on_batch).impls
        used = "fast (" + ", ".join(sorted(set(i.split(":")[1] for i in impls))) + ")"
    else:
        ReferenceScorer(device, batch_size=batch, workers=workers).score_one(detector, manifest, degradations, on_batch=on_batch)
        used = f"reference ({device.type})"
    sync(device)
    return len(manifest) * len(degradations) / (time.perf_counter() - start), first[0] - start, used


def profiled(detector, manifest, degradations, device, batch: int, workers: int, bf16: bool, impl: str, rows: int = 15
             ) -> tuple[str, float | None, float]:
    """Row (b)'s call once more under torch.profiler: the table of the ops that took the most device time (CPU
    time on a CPU), the device's busy seconds (its kernels' and copies' own times, summed as the table's footer
    does; None on a CPU) and the call's wall seconds. Why: on an H100, (b) ran at 0.88 of (a) after its first
    batch; this tells whether the rest is the device's own degradations and preprocessing, or the device waiting."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    on_gpu = device.type == "cuda"
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_gpu else [])) as profiler:
        ours(detector, manifest, degradations, device, batch, workers, bf16, impl)
    wall = time.perf_counter() - start
    events = profiler.key_averages()
    busy = sum(e.self_device_time_total for e in events if e.device_type != DeviceType.CPU and not getattr(e, "is_user_annotation", False)) / 1e6
    table = events.table(sort_by="self_device_time_total" if on_gpu else "self_cpu_time_total", row_limit=rows)
    return table, busy if on_gpu else None, wall


def after_first(rate: float, pairs: int, startup: float) -> float | None:
    """The rate after the first batch reached the model (the pairs over the time left): what a dataset much larger
    than the benchmark's folder would see; None when the first batch came at about the end."""
    left = pairs / rate - startup
    return None if left <= 0.01 * startup else pairs / left


def first_batch_note(rate: float, pairs: int, startup: float, reference: float, name: str) -> str:
    """When the first batch reached the model, and the rate after it."""
    later = after_first(rate, pairs, startup)
    if later is None:
        return f"first batch after {startup:.2f} s (about all of it)"
    return f"first batch after {startup:.2f} s, then {later:,.0f}/s ({later / reference:.2f} of {name})"


def speedup(rate: float, startup: float, baseline: float, baseline_startup: float, pairs: int) -> str:
    """``rate``'s run against ``baseline``'s after each one's first batch: the first pays the cold start (the
    blur's compiles on an empty Triton cache) that later calls in the process skip."""
    later, base = after_first(rate, pairs, startup), after_first(baseline, pairs, baseline_startup)
    return "-" if later is None or base is None else f"{later / base:.2f}x"


def data_stages(detector, manifest, degradations, device, batch: int, workers: int, with_device_work: bool
                ) -> tuple[float, float, float, float]:
    """Rows (d) and (e): the fast path's own pieces, timed without the model, in (image, degradation) pairs/s;
    the main process's CPU time per image (ms): with many workers, the main process is the one consumer; and
    the seconds until the workers had started (the DataLoader forks them one after another) and until the first
    model batch was gathered (that and the first chunks' decoding)."""
    from mirage_bench.scoring.batches import CHUNK_IMAGES, grid_loader, model_batches, on_device, prepared_batches
    from mirage_bench.scoring.device_plan import device_plans

    plans = device_plans(degradations)
    loader = grid_loader(manifest, degradations, plans, 0, raw_jpeg=False, batch_size=batch, workers=workers,
                         pin_memory=device.type == "cuda")
    first: list[float] = []
    start, cpu_start = time.perf_counter(), time.process_time()
    chunks = iter(loader)  # starts the workers
    started = time.perf_counter() - start
    if with_device_work:
        for _, inputs in prepared_batches(chunks, plans, [detector.input_spec], device, batch):
            first = first or [time.perf_counter() - start]
            for _ in inputs:
                pass
    else:
        for parts, _ in model_batches(chunks, batch, ramp_from=CHUNK_IMAGES):
            first = first or [time.perf_counter() - start]
            on_device(parts, device)
    sync(device)
    main_ms = (time.process_time() - cpu_start) / len(manifest) * 1e3
    return len(manifest) * len(degradations) / (time.perf_counter() - start), main_ms, started, first[0]


def anonymous_gib() -> float | None:
    """This process's anonymous resident memory (Linux ``RssAnon``), in GiB; None elsewhere. Why: forking copies
    the page tables of that memory once per worker, so it sets how long row (d)'s workers take to start."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    kib = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("RssAnon:")), None)
    return None if kib is None else kib / 2**20


def train_throughput(card: str, backbone: str | None, size: int | None, device, batch: int, steps: int, bf16: bool,
                     extra: list[str]) -> tuple[float, str]:
    detector = build(card, backbone, size, device, extra).train()
    params = [p for _, p in detector.trainable_parameters()]
    optimiser = torch.optim.SGD(params, lr=0.002, momentum=0.9)
    s = detector.input_spec.size
    images = torch.randn(batch, 3, s, s, device=device)
    labels = torch.arange(batch, device=device) % 2
    ids = torch.arange(batch, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    for step in range(steps + 2):
        if step == 2:
            sync(device)
            start = time.perf_counter()
        with autocast:
            loss, _ = detector.training_loss(images, labels, ids + step * batch)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    sync(device)
    rate = batch * steps / (time.perf_counter() - start)
    peak = f"peak {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB" if device.type == "cuda" else "peak memory: CUDA only"
    return rate, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--detector", default="univfd", help="card for rows a-c")
    parser.add_argument("--backbone", default=None, help="override the backbone (default: the card's, ViT-L/14)")
    parser.add_argument("--size", type=int, default=None, help="override input size (tiny CPU runs)")
    parser.add_argument("--images", type=int, default=768)
    parser.add_argument("--varied", action="store_true", help="JPEG reals of varied sizes (ImageNet-like) instead of 500x375")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    parser.add_argument("--train-cards", default="mirage,coop")
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--train-steps", type=int, default=10)
    parser.add_argument("--train-set", action="append", default=[], help="override for the training cards (e.g. params.depth=2)")
    parser.add_argument("--impl", choices=("auto", "fast", "reference"), default="auto",
                        help="row (b)'s scorer: auto is the fast path on CUDA and the reference on a CPU (as mirage-bench run)")
    parser.add_argument("--compile", action="store_true", help="also time model-only under torch.compile")
    parser.add_argument("--no-train", action="store_true", help="skip the training-throughput lines")
    parser.add_argument("--no-naive", action="store_true", help="skip row (c) (the vs (c) column then reads -)")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="after row (b), profile its call on the first N images: the ops with the most device time")
    args = parser.parse_args()

    from mirage_bench.degradations import expand

    device = torch.device(args.device)
    bf16 = device.type == "cuda"
    torch.backends.cuda.matmul.allow_tf32 = True
    detector = build(args.detector, args.backbone, args.size, device)
    degradations = expand(["none", "genimage"])
    rows: list[tuple[str, ...]] = []

    def vs_naive(rate: float) -> str:
        return "-" if args.no_naive else f"{rate / c:.2f}"

    def add(row: tuple[str, ...]) -> None:
        print(" | ".join(row), flush=True)  # partial results survive a time limit
        rows.append(row)

    a = model_only(detector, detector.input_spec.size, device, args.batch, args.iters, bf16)
    add(("(a) model-only forward", f"{a:,.0f}", "1.00", "-", f"{args.detector}, batch {args.batch}, {'bf16' if bf16 else 'fp32'}"))
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_folder(Path(tmp), args.images, varied=args.varied)
        c = float("nan") if args.no_naive else naive_loop(detector, manifest, degradations, device, args.batch, args.workers, bf16)
        pairs = len(manifest) * len(degradations)
        b, startup, used = ours(detector, manifest, degradations, device, args.batch, args.workers, bf16, args.impl)
        add(("(b) ours end-to-end", f"{b:,.0f}", f"{b / a:.2f}", vs_naive(b),
             f"{used}; {len(degradations)} degradations, {args.images} images{' (varied sizes)' if args.varied else ''}; "
             + first_batch_note(b, pairs, startup, a, "(a)")))
        if device.type == "cuda" and used.startswith("fast"):
            b0, startup0, _ = ours(detector, manifest, degradations, device, args.batch, args.workers, bf16, args.impl, copy_stream=False)
            add(("(b0) (b), copies on the compute stream", f"{b0:,.0f}", f"{b0 / a:.2f}", vs_naive(b0),
                 f"after the first batch (b) runs {speedup(b, startup, b0, startup0, pairs)} this; "
                 + first_batch_note(b0, pairs, startup0, a, "(a)")))
        if args.profile:
            table, busy, wall = profiled(detector, manifest.iloc[: args.profile], degradations, device, args.batch, args.workers, bf16,
                                         args.impl)
            busy_note = "" if busy is None else f", the device busy {busy:.2f} s of it ({busy / wall:.0%}; the profiler slows the host)"
            print(f"(b) under torch.profiler, {min(args.profile, len(manifest))} images: {wall:.2f} s wall{busy_note}\n{table}", flush=True)
        if not args.no_naive:
            add(("(c) naive loop", f"{c:,.0f}", f"{c / a:.2f}", "1.00", f"PIL per image per degradation, {args.workers} workers"))
        anonymous = anonymous_gib()
        forked_from = "" if anonymous is None else f" (forked from {anonymous:.2f} GiB of anonymous memory)"
        d, main_ms, started_d, first_d = data_stages(detector, manifest, degradations, device, args.batch, args.workers,
                                                     with_device_work=False)
        add(("(d) fast path, data stage only", f"{d:,.0f}", f"{d / a:.2f}", vs_naive(d),
             f"decode + CPU degradations in {args.workers} workers, to {device.type}; main process {main_ms:.2f} ms CPU/image; "
             f"workers started after {started_d:.2f} s{forked_from}, first batch gathered after {first_d:.2f} s"))
        e, _, _, first_e = data_stages(detector, manifest, degradations, device, args.batch, args.workers, with_device_work=True)
        add(("(e) fast path without the model", f"{e:,.0f}", f"{e / a:.2f}", vs_naive(e),
             f"(d) + degradations and preprocessing on {device.type}; first batch after {first_e:.2f} s"))
        if device.type == "cuda":  # nvjpeg needs a grid that runs on the device: clean images only
            clean = degradations[:1]
            f, _, _ = ours(detector, manifest, clean, device, args.batch, args.workers, bf16, "fast")
            add(("(f) clean images only, PIL decode", f"{f:,.0f}", f"{f / a:.2f}", "-", f"{args.workers} workers decode"))
            f2, _, _ = ours(detector, manifest, clean, device, args.batch, args.workers, bf16, "fast-nvjpeg")
            add(("(f') clean images only, nvjpeg decode", f"{f2:,.0f}", f"{f2 / a:.2f}", "-",
                 f"{f2 / f:.2f}x (f): JPEGs decoded on the GPU (pixels differ from PIL's), PNGs in the workers"))
        if args.compile:  # compiling ViT-L/14 takes about a minute
            from mirage_bench.scoring.batches import CHUNK_IMAGES
            from mirage_bench.scoring.fast import compiled
            from mirage_bench.scoring.trunks import model_trunks

            # What (b') compiles and runs per batch: the trunk's encoder (UnivFD's frozen tower) under
            # torch.compile, then the head; (b') then finds the compiled code, as a run's later subsets do.
            trunk, s = model_trunks([detector], [0])[0], detector.input_spec.size
            model = trunk._replace(encode=compiled(trunk.encode)).logits
            start = time.perf_counter()
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                model(torch.randn(CHUNK_IMAGES, 3, s, s, device=device).contiguous(memory_format=torch.channels_last))
            sync(device)
            compile_s = time.perf_counter() - start
            rate = model_only(model, s, device, args.batch, args.iters, bf16)
            add(("(a') model-only, torch.compile", f"{rate:,.0f}", f"{rate / a:.2f}", "-",
                 f"the scorer's trunk, compiled in {compile_s:.1f} s (once per process) on a first batch of {CHUNK_IMAGES} "
                 f"(as (b')'s; batch dimension dynamic), timed at {args.batch}"))
            b2, startup, used = ours(detector, manifest, degradations, device, args.batch, args.workers, bf16, args.impl,
                                     compile_model=True)
            add(("(b') ours end-to-end, torch.compile", f"{b2:,.0f}", f"{b2 / rate:.2f} of (a')", vs_naive(b2),
                 f"{used}; " + first_batch_note(b2, pairs, startup, rate, "(a')")))
    del detector
    for card in [] if args.no_train else [c.strip() for c in args.train_cards.split(",") if c.strip()]:
        rate, peak = train_throughput(card, args.backbone, args.size, device, args.train_batch, args.train_steps, bf16, args.train_set)
        add((f"train {card}", f"{rate:,.0f}", "-", "-", f"batch {args.train_batch}, {peak}"))
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print_table(f"Evaluation throughput on {name}, torch {torch.__version__}", ("row", "images/s", "vs (a)", "vs (c)", "setting"), rows)


if __name__ == "__main__":
    main()
