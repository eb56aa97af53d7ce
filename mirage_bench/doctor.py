"""Facts about the environment, collected for ``mirage-bench doctor`` and stored in every run record."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from mirage_bench.detectors.infra.checkpoint import package_versions


def device_facts() -> dict[str, str]:
    import torch

    facts = {"cuda": "available" if torch.cuda.is_available() else "not available (CPU runs only)"}
    if torch.cuda.is_available():
        facts["gpu"] = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
        facts["bf16"] = "supported" if torch.cuda.is_bf16_supported() else "not supported (fp32 is used)"
    else:
        facts["bf16"] = "CPU: runs in fp32"
    facts["cpu threads"] = str(torch.get_num_threads())
    return facts


def cached_weights(model_and_tag: str) -> str:
    """Whether open_clip's pretrained weights for ``model:tag`` are already in the local hub cache."""
    try:
        import open_clip
    except ImportError as exc:  # reported, not hidden: doctor's job is to say what is missing
        return f"open_clip not importable: {exc}"
    model, _, tag = model_and_tag.partition(":")
    try:
        cfg = open_clip.get_pretrained_cfg(model, tag)
    except Exception as exc:  # noqa: BLE001 - shown to the user verbatim
        return f"cannot look up {model_and_tag}: {exc}"
    if not cfg:
        return f"{model_and_tag}: no such pretrained tag in open_clip {open_clip.__version__}"
    hub = cfg.get("hf_hub", "").rstrip("/")
    if hub:
        cache = Path(os.environ.get("HF_HUB_CACHE", Path(os.environ.get("HF_HOME", Path.home() / ".cache/huggingface")) / "hub"))
        folder = cache / f"models--{hub.replace('/', '--')}"
        if folder.is_dir() and any(folder.glob("snapshots/*/*")):
            return f"cached in {folder}"
        return f"not cached ({folder}); downloaded from hf-hub:{hub} on first use when online, or pass a local file"
    return f"url {cfg.get('url', '?')} (not checked)"


def collect(weights: str) -> dict[str, str]:
    facts = {"platform": f"{platform.system()} {platform.machine()}"}
    facts.update({f"version {k}": v for k, v in package_versions().items()})
    facts.update(device_facts())
    facts[f"weights {weights}"] = cached_weights(weights)
    facts["published weights"] = published_weights()
    return facts


def published_weights() -> str:
    """Which published cards' files are in the local caches (`mirage-bench weights fetch CARD` adds one)."""
    from mirage_bench.zoo.card import list_published
    from mirage_bench.zoo.fetch import cache_path

    cards = list_published()
    cached = [f"{c.name} ({cache_path(c)})" for c in cards if cache_path(c).is_file()]
    return f"{len(cached)} of {len(cards)} cached" + (": " + ", ".join(cached) if cached else "")
