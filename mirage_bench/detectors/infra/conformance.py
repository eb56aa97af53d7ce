"""The conformance check every registered detector must pass (scikit-learn's ``check_estimator`` idea).

``check_detector(card)`` builds the card's tiny variant and checks the detector contract end to end;
it raises :class:`ContractError` (or :class:`CheckpointError` from the checkpoint checks) naming the
first broken promise. ``tests/detectors/test_contract.py`` runs it over every recipe card.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import torch

from mirage_bench.detectors.base import Detector
from mirage_bench.detectors.infra.build import build_tiny
from mirage_bench.detectors.infra.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from mirage_bench.errors import CheckpointError, ContractError


def check_detector(card: str, recipe_dirs: Sequence[str] = ()) -> None:
    torch.manual_seed(0)
    detector = build_tiny(card, recipe_dirs=recipe_dirs)
    spec = detector.input_spec
    images = torch.randn(4, 3, spec.size, spec.size)
    labels = torch.tensor([0, 1, 0, 1])
    _check_forward(detector, images)
    _check_frozen_encoder(detector, images)
    _check_training_step(detector, images, labels)
    with tempfile.TemporaryDirectory() as tmp:
        _check_checkpoint(detector, images, Path(tmp))


def _check_forward(detector: Detector, images: torch.Tensor) -> None:
    detector.eval()
    with torch.no_grad():
        logits = detector(images)
    if logits.shape != (images.shape[0],) or logits.dtype != torch.float32:
        raise ContractError(f"forward must return fp32 logits of shape [{images.shape[0]}], got {tuple(logits.shape)} {logits.dtype}")
    if not torch.isfinite(logits).all():
        raise ContractError(f"forward returned non-finite logits: {logits.tolist()}")
    probs = detector.p_fake(logits)
    if not ((probs >= 0) & (probs <= 1)).all():
        raise ContractError(f"p_fake must lie in [0, 1], got {probs.tolist()}")


def _check_frozen_encoder(detector: Detector, images: torch.Tensor) -> None:
    """A detector that declares ``frozen_encoder`` (its checkpoints then share one encoder forward when scored
    together) must score exactly ``head(encode(x))``, and its ``encode`` must not read trainable state."""
    if not detector.frozen_encoder:
        return
    if not (callable(getattr(detector, "encode", None)) and callable(getattr(detector, "head", None))):
        raise ContractError("the detector declares frozen_encoder but has no encode()/head() pair")
    detector.eval()
    with torch.no_grad():
        features = detector.encode(images)
        if not torch.equal(detector(images), detector.head(features).float()):
            raise ContractError("the detector declares frozen_encoder but forward(x) is not exactly head(encode(x))")
        saved = [p.detach().clone() for _, p in detector.trainable_parameters()]
        for _, p in detector.trainable_parameters():
            p.add_(1.0)
        moved = not torch.equal(detector.encode(images), features)
        for (_, p), value in zip(detector.trainable_parameters(), saved):
            p.copy_(value)
    if moved:
        raise ContractError("the detector declares frozen_encoder but encode() changes with its trainable parameters; "
                            "checkpoints scored together would share a wrong encoding (set frozen_encoder = False)")


def _check_training_step(detector: Detector, images: torch.Tensor, labels: torch.Tensor) -> None:
    trainable = detector.trainable_parameters()
    if not trainable:
        raise ContractError("the detector declares no trainable parameters")
    state_keys = set(detector.state_dict())
    frozen_before = {
        f"{m}.{n}": t.detach().clone() for m, mod in detector.frozen_modules().items() for n, t in mod.state_dict().items()
    }
    for name in frozen_before:
        if name in state_keys:
            raise ContractError(f"frozen tensor {name!r} is part of state_dict(); frozen parts stay out of checkpoints")
    for name, param in detector.named_parameters():
        if not param.requires_grad and name in state_keys:
            raise ContractError(f"parameter {name!r} is frozen but registered in the module; hold frozen parts with hold_frozen()")
    before = {n: p.detach().clone() for n, p in trainable}
    optimiser = torch.optim.SGD([p for _, p in trainable], lr=0.1)
    detector.train()
    loss, stats = detector.training_loss(images, labels, torch.arange(len(labels)))
    if loss.dim() != 0 or not torch.isfinite(loss):
        raise ContractError(f"training_loss must return a finite scalar, got {loss}")
    optimiser.zero_grad()
    loss.backward()
    optimiser.step()
    if not any(not torch.equal(before[n], p.detach()) for n, p in trainable):
        raise ContractError("a training step changed none of the trainable parameters (no gradient reaches them)")
    for module_name, module in detector.frozen_modules().items():
        if module.training:
            raise ContractError(f"frozen module {module_name!r} is in training mode after detector.train()")
        for n, t in module.state_dict().items():
            if not torch.equal(frozen_before[f"{module_name}.{n}"], t):
                raise ContractError(f"frozen tensor {module_name}.{n} changed during a training step")


def _check_checkpoint(detector: Detector, images: torch.Tensor, tmp: Path) -> None:
    detector.eval()
    path = tmp / "detector.ckpt"
    save_checkpoint(detector, path, {"threshold": 0.5})
    payload = read_checkpoint(path)
    if payload["recipe"]["input"] != detector.input_spec.model_dump(mode="json"):
        raise ContractError("the checkpoint does not hold the detector's input spec")
    restored, metadata = load_checkpoint(path)
    with torch.no_grad():
        if not torch.equal(detector(images), restored(images)):
            raise ContractError("a checkpoint round trip changed the detector's outputs")
    if metadata.get("threshold") != 0.5:
        raise ContractError("checkpoint metadata did not round-trip")
    truncated = tmp / "truncated.ckpt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _expect_refusal(truncated, "a truncated checkpoint")
    tampered = tmp / "tampered.ckpt"
    payload["state"] = {f"{k}.renamed": v for k, v in payload["state"].items()}
    torch.save(payload, tampered)
    _expect_refusal(tampered, "a checkpoint with renamed state keys")


def _expect_refusal(path: Path, what: str) -> None:
    try:
        load_checkpoint(path)
    except CheckpointError:
        return
    raise ContractError(f"{what} was loaded without an error; loading must be strict")
