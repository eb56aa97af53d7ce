"""Checkpoints: the trainable state plus everything needed to know what it is.

A checkpoint holds the resolved recipe (input spec included), the backbone's identity (name, tag,
weights-file sha256), the trainable state, package versions and caller metadata (e.g. the calibrated
threshold). It is written atomically and read with ``weights_only=True``; loading is strict, and any
mismatch is a :class:`CheckpointError` that lists the offending keys.
"""

from __future__ import annotations

import hashlib
import io
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch

from mirage_bench.config import RecipeCard
from mirage_bench.detectors.base import Detector
from mirage_bench.detectors.infra.weights_file import refused_objects, unreadable
from mirage_bench.errors import CheckpointError

FORMAT = "mirage-bench/checkpoint-v1"
_VERSIONED = ("mirage-bench", "torch", "torchvision", "open_clip_torch", "timm", "numpy", "pillow")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write through a synced temporary file in the same folder, then rename: a crash never leaves half a file,
    and a full, read-only or forbidden disk is a :class:`~mirage_bench.errors.StorageError` naming the path."""
    from mirage_bench.store import replace_file

    buffer = io.BytesIO()  # saved from memory: the archive does not record the temporary file's name
    torch.save(obj, buffer)
    replace_file(Path(path), lambda tmp: tmp.write_bytes(buffer.getvalue()))


def save_checkpoint(detector: Detector, path: str | Path, metadata: dict[str, Any] | None = None) -> str:
    """Save ``detector``'s trainable state with its recipe and identity; returns the file's sha256."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "detector": detector.recipe.detector,
        "recipe": detector.recipe.model_dump(mode="json"),
        "backbone": detector.backbone_identity(),
        "state": {k: v.detach().to("cpu").clone() for k, v in detector.state_dict().items()},
        "versions": package_versions(),
        "metadata": metadata or {},
    }
    atomic_torch_save(payload, path)
    return sha256_file(path)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw payload, validated for format; a truncated or foreign file is a clear error."""
    from mirage_bench.store import zip_damage

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    damage = zip_damage(path)  # torch.load never checks the archive's CRCs: a flipped bit would load silently
    try:
        if damage is not None:
            raise CheckpointError(damage)
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises RuntimeError/UnpicklingError/EOFError for damaged files
        refused = refused_objects(path, exc, "checkpoint", "mirage-bench writes tensors and plain values only, so this "
                                  "file is not one of its checkpoints as it stands; re-create it with `mirage-bench train`.")
        if refused:
            raise CheckpointError(refused) from exc
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({unreadable(exc)}). "
            "It is truncated, corrupt or not a mirage-bench checkpoint; re-create it with `mirage-bench train`."
        ) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"checkpoint {path} has format {found!r}; expected {FORMAT!r}")
    return payload


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[Detector, dict[str, Any]]:
    """Rebuild the detector from the stored recipe and load its state strictly.

    Returns the detector (in eval mode) and the payload's ``metadata``. The backbone is built exactly as
    the recipe says; if its identity differs from the one stored (another architecture, other weights),
    the checkpoint is refused.
    """
    from mirage_bench.detectors.infra.build import build_detector

    from mirage_bench.detectors import DETECTORS

    payload = read_checkpoint(path)
    recipe = RecipeCard.model_validate(payload["recipe"])
    if DETECTORS.get(recipe.detector).backbone_in_state and recipe.backbone is not None:
        # Every backbone weight is in the checkpoint: build the bare architecture (no download, no file).
        bare = recipe.model_copy(deep=True)
        bare.backbone.pretrained = "none"
        detector = build_detector(bare)
        check_backbone({"name": payload["backbone"].get("name")}, {"name": detector.backbone_identity().get("name")}, path)
        detector.recipe = recipe
        detector.restore_identity(payload["backbone"])
    else:
        detector = build_detector(recipe)
        check_backbone(payload["backbone"], detector.backbone_identity(), path)
    load_state_strict(detector, payload["state"], path)
    detector.to(map_location).eval()
    return detector, dict(payload.get("metadata", {}))


def check_backbone(stored: dict[str, Any], built: dict[str, Any], path: str | Path) -> None:
    differing = sorted(k for k in {*stored, *built} if stored.get(k) != built.get(k))
    if differing:
        rows = "; ".join(f"{k}: checkpoint {stored.get(k)!r} vs built {built.get(k)!r}" for k in differing)
        raise CheckpointError(
            f"checkpoint {path} was made for another backbone ({rows}). Load it with the backbone it was "
            "trained on, or train a new checkpoint."
        )


def load_state_strict(detector: Detector, state: dict[str, torch.Tensor], path: str | Path) -> None:
    expected = detector.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = sorted(
        f"{k} (checkpoint {tuple(state[k].shape)}, model {tuple(expected[k].shape)})"
        for k in set(expected) & set(state)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys: {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {', '.join(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches: {', '.join(shapes)}")
        raise CheckpointError(f"checkpoint {path} does not match detector {detector.recipe.detector!r}: " + "; ".join(parts))
    detector.load_state_dict(state, strict=True)
