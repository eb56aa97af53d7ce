"""Content-addressed cells: what a result depends on, hashed, so finished work is found and skipped.

- A training cell is (resolved recipe, training + validation manifests, seed) -> checkpoint.
- An evaluation cell is (checkpoint content, test subset manifest, degradation spec) -> predictions.

Hashes are over canonical JSON and over the manifest columns that identify the data (image id, content
hash, label, generator), so a renamed folder keeps its hash and a changed image changes it.
The checkpoint hash is over its *content* (recipe, backbone, tensors, metadata), not the file's bytes:
``torch.save`` writes the temporary file name into the archive, so equal checkpoints differ as files.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch

from mirage_bench.config import RecipeCard
from mirage_bench.hashing import canonical_json, digest

#: Bump when a change to the engine changes results, so old cells are not reused.
ENGINE_VERSION = 2  # 2: centre crops and shorter-side resizes sized and placed as torchvision does (geometry)
#: Bump when a change to the fast path changes its results: part of its cells' keys only, so reference cells stay.
FASTPATH_VERSION = 2  # 2: resizes bit-exact with PIL (before: within 2 grey levels); normalisation with the reference's divisions

#: Card fields that document a recipe and change no number: editing them must not retrain or split a table's rows.
DOCUMENTATION_FIELDS = frozenset({"source", "description", "citation", "paper_url", "note", "tags", "variant_of", "deviations",
                                  "reconstruction"})


def recipe_hash(recipe: RecipeCard) -> str:
    """The recipe as resolved, minus where it was read from and the fields that only document it."""
    return digest(recipe.model_dump(mode="json", exclude=set(DOCUMENTATION_FIELDS)))


def train_cell_id(recipe: RecipeCard, train_hash: str, validation_hash: str, seed: int) -> str:
    """``train_hash``/``validation_hash``: the ``frame_hash`` of the training and validation manifests."""
    return digest(
        {"engine": ENGINE_VERSION, "recipe": recipe_hash(recipe), "train": train_hash, "validation": validation_hash, "seed": seed}
    )[:20]


def eval_cell_id(checkpoint_sha256: str, subset_hash: str, degradation: str, degradation_base_seed: int,
                 impl: str = "reference") -> str:
    """Reference and fast scores are different cells: the fast path's inputs are the reference's bit for bit, but
    its batches, autocast and device kernels round floats differently."""
    key = {"engine": ENGINE_VERSION, "checkpoint": checkpoint_sha256, "subset": subset_hash,
           "degradation": degradation, "degradation_base_seed": degradation_base_seed}
    if impl != "reference":
        key["impl"] = impl
        key["fastpath"] = FASTPATH_VERSION
    return digest(key)[:20]


def checkpoint_content_hash(payload: dict[str, Any]) -> str:
    """sha256 over a checkpoint payload's recipe, backbone, metadata and tensor bytes (sorted keys)."""
    h = hashlib.sha256()
    h.update(canonical_json({k: payload[k] for k in ("format", "detector", "recipe", "backbone", "metadata")}).encode())
    for name in sorted(payload["state"]):
        tensor = payload["state"][name]
        h.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}:".encode())
        h.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())  # any dtype
    return h.hexdigest()
