"""What identifies a cached feature. A feature is reused only when every part of its key matches.

Key = (backbone, input spec, image content sha256, degradation spec, degradation seed):
- ``backbone``: a digest of the backbone identity (name, tag, weights-file sha256, random flag). Random
  backbones add a fingerprint of their weights, since the identity alone does not pin random weights.
- ``input_spec``: a digest of the whole :class:`~mirage_bench.config.InputSpec` (resize, crop, mean/std...).
- ``image_sha256``: the image file's bytes, never its path or mtime, so changed bytes at a path miss.
- ``degradation``: the canonical spec string (``none`` for clean images); ``degradation_seed`` for
  degradations that draw random parameters per image (``None`` when the spec is deterministic).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import nn

from mirage_bench.config import InputSpec
from mirage_bench.errors import ContractError


@dataclass(frozen=True)
class FeatureKey:
    backbone: str
    input_spec: str
    image_sha256: str
    degradation: str
    degradation_seed: int | None = None

    @property
    def digest(self) -> str:
        """The key's sha256: the primary key of the cache index."""
        parts = (self.backbone, self.input_spec, self.image_sha256, self.degradation, str(self.degradation_seed))
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _canonical_digest(data: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def weights_fingerprint(module: nn.Module) -> str:
    """sha256 over a module's tensors (names, dtypes, shapes, bytes) in sorted name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}".encode())
        digest.update(t.view(-1).view(dtype=torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def backbone_key(identity: Mapping[str, Any], frozen: nn.Module | None = None) -> str:
    """Digest of a backbone identity; a random backbone must pass its module to be fingerprinted."""
    data = dict(identity)
    if data.get("random"):
        if frozen is None:
            raise ContractError(
                f"backbone {data.get('name')!r} is random: its identity does not pin its weights, so pass the "
                "frozen module to backbone_key() to fingerprint them"
            )
        data["weights_fingerprint"] = weights_fingerprint(frozen)
    return _canonical_digest(data)


def input_spec_key(spec: InputSpec) -> str:
    """Digest of the preprocessing that produced the encoder's input."""
    return _canonical_digest(spec.model_dump(mode="json"))
