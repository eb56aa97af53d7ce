"""Models scored together that hold the same frozen weights keep one copy, and run a shared encoder once.

A run scores every checkpoint of a detector (training sets x seeds) on the same images, and their frozen
backbones are bit-equal. Loaded into one pass, they hold one copy of those weights (``adopt_frozen``), so a
pass holds many more of them. UnivFD's checkpoints differ only in a linear head on a frozen CLIP image tower,
so encoding each batch once and applying every head gives each model exactly the logits of its own forward,
for one tower forward instead of one per checkpoint. A detector opts in to that with
``Detector.frozen_encoder`` (the conformance check holds it to the promise). Frozen weights count as the same
only for models of one class that name one backbone and hold bit-equal tensors under the same names.
"""

from __future__ import annotations

from typing import Callable, Hashable, NamedTuple, Sequence

import torch

from mirage_bench.detectors.base import Detector

Head = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (encoder output, images) -> logits [B]


class Trunk(NamedTuple):
    """One forward's worth of shared work: ``encode`` (a model's own forward, or a frozen encoder several
    models share) and, per model it serves, the model's index and its head on the encoder's output."""

    spec: int  # index of the input spec the trunk reads, among the distinct specs of the models
    encode: Callable[[torch.Tensor], torch.Tensor]
    heads: list[tuple[int, Head]]

    def logits(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each served model's fp32 logits ``[B]`` of the batch ``x``, from one encoder forward."""
        features = self.encode(x)
        return [head(features, x).float() for _, head in self.heads]


def _own_output(features: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    return features


def _head_of(detector: Detector) -> Head:
    return lambda features, images: detector.check_output(images, detector.head(features))


def same_frozen_weights(a: Detector, b: Detector) -> bool:
    """Whether the two hold the same frozen modules: same class and backbone identity, frozen modules of the
    same names and types, holding bit-equal tensors (trivially so once one adopted the other's)."""
    if not (type(a) is type(b) and a.backbone_identity() == b.backbone_identity()):
        return False
    mine, theirs = a.frozen_modules(), b.frozen_modules()
    if mine.keys() != theirs.keys() or any(type(mine[name]) is not type(theirs[name]) for name in mine):
        return False
    for name in mine:
        if mine[name] is theirs[name]:
            continue
        x, y = mine[name].state_dict(), theirs[name].state_dict()
        if x.keys() != y.keys() or not all(torch.equal(x[k], y[k]) for k in x):
            return False
    return True


def same_frozen_encoder(a: Detector, b: Detector) -> bool:
    """Whether ``a.encode`` and ``b.encode`` are one function: both declare a frozen encoder, read images
    through one input spec and hold the same frozen weights."""
    return a.frozen_encoder and b.frozen_encoder and a.input_spec == b.input_spec and same_frozen_weights(a, b)


def adopt_frozen(detector: Detector, held: Sequence[Detector]) -> bool:
    """Point ``detector``'s frozen modules at those of the first of ``held`` with the same frozen weights, so its
    own copy is freed; returns whether it found one. The modules are frozen and in eval mode: scoring never
    changes them."""
    if not detector.frozen_modules():
        return False
    for other in held:
        if same_frozen_weights(other, detector):
            for name, module in other.frozen_modules().items():
                detector.hold_frozen(name, module)
            return True
    return False


def model_trunks(detectors: Sequence[Detector], spec_of: Sequence[int], keys: Sequence[Hashable] | None = None) -> list[Trunk]:
    """The trunks that score ``detectors`` (``spec_of[k]``: model k's spec index): one per group of models
    sharing a frozen encoder, one per other model. ``keys``: models share only with equal keys (the fast path
    passes each model's autocast choice, which changes what the encoder computes)."""
    keys = list(keys) if keys is not None else [None] * len(detectors)
    trunks: list[Trunk] = []
    shared: list[tuple[int, int]] = []  # (trunk index, the model whose encode the trunk runs)
    for k, detector in enumerate(detectors):
        host = next((t for t, r in shared if keys[r] == keys[k] and same_frozen_encoder(detectors[r], detector)), None)
        if host is not None:
            trunks[host].heads.append((k, _head_of(detector)))
        elif detector.frozen_encoder:
            shared.append((len(trunks), k))
            trunks.append(Trunk(spec_of[k], detector.encode, [(k, _head_of(detector))]))
        else:
            trunks.append(Trunk(spec_of[k], detector, [(k, _own_output)]))
    return trunks
