"""Building a mini benchmark set: crop reals, train the four generators, write fakes in GenImage layout.

The result at ``ROOT`` is ``{generator}/{train,val}/{ai,nature}/NNNNN.png`` plus ``manifest.csv`` (one row
per image: where it came from and its sha256), ``card.json`` (format version, content version, every knob,
each generator's first and last training loss, timings, the photos with their licences) and
``contact_sheet.png``. A set is built in a temporary folder beside ``ROOT`` and moved into place only when
complete; an existing set is reused when its knobs match and replaced only with ``force``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from pydantic import Field

from mirage_bench.config import StrictModel
from mirage_bench.errors import ConfigError, DataError
from mirage_bench.mini.checks import sliced_wasserstein
from mirage_bench.mini.contact import write_contact_sheet
from mirage_bench.mini.families import FAMILIES, GENERATORS, Family, Knobs, default_knobs
from mirage_bench.mini.manifest import ImageRecord, write_image, write_manifest
from mirage_bench.mini.photos import MIN_CROP_STD, PHOTOS, SCALES, SPLITS, Crop, sample_crops
from mirage_bench.mini.train import reconstruct
from mirage_bench.progress import Progress, no_progress, step

FORMAT_VERSION = 1


class MiniConfig(StrictModel):
    """Every knob of a build; two builds with equal configs on the same machine give the same files."""

    size: int = Field(32, ge=8, description="side of every image in px (a power of two)")
    per_generator: int = Field(160, ge=1, description="fakes (and as many reals) per generator in the train split")
    val_per_generator: int = Field(64, ge=1, description="fakes (and as many reals) per generator in the val split")
    seed: int = Field(0, ge=0)
    device: str = Field("cpu", pattern="^(cpu|cuda)$")
    threads: int = Field(1, ge=1, description=(
        "torch CPU threads during the build; results may depend on it, and one thread is the most reproducible "
        "and, on a shared machine, often the fastest"))
    pool: int = Field(2048, ge=8, description="training-photo crops the generators learn from")
    swd_samples: int = Field(256, ge=8, description="samples for the sliced Wasserstein distance to training crops")
    generators: dict[str, dict[str, Any]] = Field(description="generator key -> its training knobs")


def mini_config(size: int = 32, per_generator: int = 160, device: str = "cpu", seed: int = 0, *,
                val_per_generator: int | None = None, generator_knobs: dict[str, Any] | None = None,
                threads: int = 1, pool: int | None = None) -> MiniConfig:
    """The config of a build. ``generator_knobs`` (e.g. ``{"iterations": 20, "width": 8}``) replaces those knobs
    in every generator that has them: micro builds in tests."""
    if size < 8 or size & (size - 1):
        raise ConfigError(f"--size must be a power of two >= 8 (the generators halve it down to 4 px), got {size}")
    knobs = default_knobs()
    if generator_knobs:
        unknown = sorted(set(generator_knobs) - set().union(*(type(k).model_fields for k in knobs.values())))
        if unknown:
            raise ConfigError(f"unknown generator knobs {unknown}; known: {sorted(set().union(*(type(k).model_fields for k in knobs.values())))}")
        knobs = {key: type(k).model_validate({**k.model_dump(), **{n: v for n, v in generator_knobs.items() if n in type(k).model_fields}})
                 for key, k in knobs.items()}
    return MiniConfig(
        size=size, per_generator=per_generator, seed=seed, device=device, threads=threads,
        val_per_generator=val_per_generator if val_per_generator is not None else max(1, round(per_generator * 0.4)),
        pool=pool if pool is not None else 2048,
        swd_samples=min(256, pool if pool is not None else 2048),
        generators={key: k.model_dump() for key, k in knobs.items()},
    )


@dataclass(frozen=True)
class BuildResult:
    root: Path
    card: dict[str, Any]
    cached: bool


def derived_seed(seed: int, *parts: str) -> int:
    """A stable 63-bit seed for one purpose (``seed``, then names), independent of call order."""
    digest = hashlib.sha256("/".join([str(seed), *parts]).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def training_pool(config: MiniConfig) -> tuple[list[Crop], np.ndarray]:
    """The training-photo crops every generator learns from (recomputable from the config alone)."""
    return sample_crops("train", config.pool, config.size, np.random.default_rng(derived_seed(config.seed, "pool")))


def build_mini(out: Path | str, size: int = 32, per_generator: int = 160, device: str = "cpu", seed: int = 0,
               force: bool = False, progress: Progress = no_progress, **knobs: Any) -> BuildResult:
    """Build (or reuse) a mini set at ``out``; extra keyword knobs go to :func:`mini_config`. ``progress`` shows
    each stage (:mod:`mirage_bench.progress`)."""
    config = mini_config(size, per_generator, device, seed, **knobs)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; give a folder for the mini set")
    existing = _existing_card(out)
    if existing is not None and existing.get("config") == config.model_dump(mode="json") and not force:
        return BuildResult(out, existing, cached=True)
    if out.exists() and any(out.iterdir()) and not force:
        what = "a mini set built with other knobs" if existing is not None else "files that are not a mini set"
        raise DataError(
            f"{out} already holds {what}; refusing to overwrite it. Pass --force (force=True) to rebuild it "
            "there, or choose another --out."
        )
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.building-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        card = _build_into(staging, config, progress)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_into_place(staging, out)
    return BuildResult(out, card, cached=False)


def _existing_card(out: Path) -> dict[str, Any] | None:
    path = out / "card.json"
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path} is not valid JSON ({exc}); rebuild the set with --force") from exc


def _swap_into_place(staging: Path, out: Path) -> None:
    """Move the finished set to ``out``; a previous set is moved aside first and deleted only afterwards."""
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if out.exists():
        out.rename(old)
    staging.rename(out)
    if old.exists():
        shutil.rmtree(old)


@contextlib.contextmanager
def _deterministic(threads: int, device: str) -> Iterator[None]:
    previous = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())
    if device == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.utils.deterministic.fill_uninitialized_memory = False  # NaN-filling every new tensor doubles CPU time
    try:
        yield
    finally:
        torch.set_num_threads(previous[0])
        torch.use_deterministic_algorithms(previous[1])
        torch.utils.deterministic.fill_uninitialized_memory = fill


def _to_tensor(pixels: np.ndarray, device: Any) -> Any:
    return (torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 127.5 - 1).to(device)


def _to_uint8(images: Any) -> np.ndarray:
    return ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def _build_into(root: Path, config: MiniConfig, progress: Progress) -> dict[str, Any]:
    started = time.perf_counter()
    device = torch.device(config.device)
    records: list[ImageRecord] = []
    generator_cards: dict[str, Any] = {}
    with _deterministic(config.threads, config.device):
        with step(progress, "training crops"):
            _, pool_pixels = training_pool(config)
            data = _to_tensor(pool_pixels, device)
            reference = pool_pixels[: config.swd_samples].reshape(config.swd_samples, -1) / 255.0
        crops_seconds = time.perf_counter() - started
        counts = {"train": config.per_generator, "val": config.val_per_generator}
        for key in GENERATORS:
            family = FAMILIES[key]
            knobs = family.knobs.model_validate(config.generators[key])
            torch.manual_seed(derived_seed(config.seed, key, "init"))
            model = family.build(config.size, knobs).to(device)
            gen = torch.Generator().manual_seed(derived_seed(config.seed, key, "train"))
            swd = None
            if family.sample is not None:
                swd_gen = torch.Generator().manual_seed(derived_seed(config.seed, key, "swd"))
                swd = {"initial": _swd(family, model, config, knobs, swd_gen, device, reference)}
            t0 = time.perf_counter()
            trained = progress(f"train {key}", knobs.iterations)  # mini.train reports (step, iterations) once a step
            log = family.train(model, data, knobs, gen, lambda done, total: trained(1))
            train_seconds = time.perf_counter() - t0
            if swd is not None:
                swd_gen = torch.Generator().manual_seed(derived_seed(config.seed, key, "swd"))
                swd["final"] = _swd(family, model, config, knobs, swd_gen, device, reference)
            t0 = time.perf_counter()
            written = progress(f"write {key}", sum(counts.values()))
            for split in SPLITS:
                records += _write_subset(root, key, split, counts[split], model, family, knobs, config, device)
                written(counts[split])
            generator_cards[key] = {
                "family": family.family,
                "description": family.description,
                "objective": family.objective,
                "parameters": sum(p.numel() for p in model.parameters()),
                "knobs": knobs.model_dump(),
                "losses": {name: {"first": first, "last": last} for name, (first, last) in log.first_last().items()},
                "swd_to_training_crops": swd,
                "train_seconds": round(train_seconds, 2),
                "fakes_seconds": round(time.perf_counter() - t0, 2),
            }
    manifest = write_manifest(root, records)
    content = hashlib.sha256("\n".join(f"{r.rel_path} {r.sha256}" for r in manifest).encode()).hexdigest()
    card = _card(config, content, generator_cards, counts, crops_seconds, time.perf_counter() - started)
    (root / "card.json").write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
    write_contact_sheet(root, manifest, root / "contact_sheet.png")
    return card


def _swd(family: Family, model: Any, config: MiniConfig, knobs: Knobs, gen: Any, device: Any, reference: np.ndarray) -> float:
    """Sliced Wasserstein distance of ``swd_samples`` samples to as many training crops (0..1 pixels)."""
    fakes = _to_uint8(family.sample(model, config.swd_samples, config.size, knobs, gen, device))
    return sliced_wasserstein(fakes.reshape(len(fakes), -1) / 255.0, reference, seed=config.seed)


def _write_subset(root: Path, key: str, split: str, count: int, model: Any, family: Family, knobs: Knobs,
                  config: MiniConfig, device: Any) -> list[ImageRecord]:
    """One generator's ``split``: ``count`` fakes and ``count`` reals drawn from that split's photos."""
    rng_reals = np.random.default_rng(derived_seed(config.seed, key, split, "reals"))
    real_crops, real_pixels = sample_crops(split, count, config.size, rng_reals)
    records = [write_image(root, key, family.family, split, 0, i, real_pixels[i], "photo", real_crops[i])
               for i in range(count)]
    if family.sample is None:  # reconstruction family: fresh crops of this split's photos, decoded
        rng_src = np.random.default_rng(derived_seed(config.seed, key, split, "sources"))
        sources, source_pixels = sample_crops(split, count, config.size, rng_src)
        fakes = _to_uint8(reconstruct(model, _to_tensor(source_pixels, device)))
        return records + [write_image(root, key, family.family, split, 1, i, fakes[i], "reconstruction", sources[i])
                          for i in range(count)]
    gen = torch.Generator().manual_seed(derived_seed(config.seed, key, split, "fakes"))
    fakes = _to_uint8(family.sample(model, count, config.size, knobs, gen, device))
    return records + [write_image(root, key, family.family, split, 1, i, fakes[i], "sample", None) for i in range(count)]


def _card(config: MiniConfig, content: str, generators: dict[str, Any], counts: dict[str, int],
          crops_seconds: float, total_seconds: float) -> dict[str, Any]:
    import PIL

    from mirage_bench import __version__

    return {
        "name": "mirage-bench mini",
        "format_version": FORMAT_VERSION,
        "version": f"{FORMAT_VERSION}+{content[:12]}",
        "content_sha256": content,
        "layout": "genimage without inner folder: {generator}/{train,val}/{ai,nature}/NNNNN.png",
        "config": config.model_dump(mode="json"),
        "counts": {key: {split: {"ai": n, "nature": n} for split, n in counts.items()} for key in generators},
        "generators": generators,
        "reals": {
            "photos": [vars(p) for p in PHOTOS],
            "split_rule": "by source photo, fixed in mirage_bench/mini/photos.py; a stereo pair is one photo",
            "crop_scales": [config.size * s for s in SCALES],
            "resize": "Lanczos to size x size",
            "min_crop_std": MIN_CROP_STD,
        },
        "environment": {
            "mirage_bench": __version__, "torch": torch.__version__, "numpy": np.__version__, "pillow": PIL.__version__,
            "python": platform.python_version(), "machine": platform.machine(), "threads": config.threads,
            "device": config.device,
        },
        "timings": {"crops_seconds": round(crops_seconds, 2), "total_seconds": round(total_seconds, 2)},
    }
