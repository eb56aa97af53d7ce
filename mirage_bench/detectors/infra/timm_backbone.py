"""Loading a trainable timm backbone with one fake logit: a timm model name plus ImageNet weights, a file, or none.

The same rules as :mod:`mirage_bench.detectors.clip.backbone`: weights that were asked for either load or
raise :class:`WeightsError` with advice. Only with ``require_pretrained: false`` may a failed download fall
back to random weights, and then a warning says so and the identity records ``random: True`` (every table
labels such runs). A local weights file is loaded strictly into the ImageNet-shaped model (timm and
torchvision ResNets share their key names) and identified by its sha256. ``mb-tiny-resnet`` is our tiny
random test architecture (a one-block-per-stage ResNet), the counterpart of ``mb-tiny-clip``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

from torch import nn

from mirage_bench.config import BackboneConfig
from mirage_bench.detectors.infra.weights_file import is_weights_path, load_error, read_state_dict
from mirage_bench.errors import WeightsError

#: ``pretrained`` value that asks timm for the weights its model tag names (e.g. ``resnet50.tv_in1k``).
IMAGENET = "imagenet"


def _tiny_resnet(num_classes: int) -> nn.Module:
    from timm.models.resnet import BasicBlock, ResNet

    # A deep stem of width 4 (not the 64-channel 7x7 stem) keeps it fast on a CPU.
    return ResNet(BasicBlock, (1, 1, 1, 1), channels=(8, 16, 32, 64), stem_type="deep", stem_width=4, num_classes=num_classes)


LOCAL_ARCHITECTURES: dict[str, Callable[[int], nn.Module]] = {"mb-tiny-resnet": _tiny_resnet}


def _create(name: str, num_classes: int, pretrained: bool = False) -> nn.Module:
    if name in LOCAL_ARCHITECTURES:
        return LOCAL_ARCHITECTURES[name](num_classes)
    import timm

    return timm.create_model(name, pretrained=pretrained, num_classes=num_classes)


def _check_name(name: str) -> None:
    import timm

    if name in LOCAL_ARCHITECTURES or timm.is_model(name.split(".")[0]):
        return
    import difflib

    close = difflib.get_close_matches(name, [*LOCAL_ARCHITECTURES, *timm.list_models()], n=3, cutoff=0.6)
    raise WeightsError(
        f"timm has no architecture {name!r}."
        + (f" Did you mean {' or '.join(map(repr, close))}?" if close else "")
        + " Use a timm model name such as 'resnet50.tv_in1k' (see timm.list_models()) or 'mb-tiny-resnet'."
    )


def load_timm_classifier(cfg: BackboneConfig) -> tuple[nn.Module, dict[str, Any]]:
    """Build ``cfg.name`` with one output (the fake logit); returns ``(model, identity)``.

    ``identity`` is ``{"name", "pretrained", "sha256", "random"}``; the classifier is always new
    (ImageNet's 1000-way head is replaced by ``Linear(features, 1)``).
    """
    from mirage_bench.detectors.infra.checkpoint import sha256_file

    _check_name(cfg.name)
    identity: dict[str, Any] = {"name": cfg.name, "pretrained": cfg.pretrained, "sha256": None, "random": cfg.is_random}
    if cfg.is_random:
        identity["pretrained"] = "none"
        return _create(cfg.name, num_classes=1), identity
    if is_weights_path(cfg.pretrained):
        path = Path(cfg.pretrained).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"backbone weights file {path} does not exist. Pass an existing file, pretrained: {IMAGENET} "
                "(downloaded by timm), or pretrained: none for random initialisation."
            )
        model = _create(cfg.name, num_classes=1000)
        state = read_state_dict(path)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise WeightsError(f"weights file {path} does not fit architecture {cfg.name!r} ({load_error(exc)}). Pass weights "
                              f"made for {cfg.name!r} (or set their architecture with --backbone / backbone.name), or "
                              "pretrained: none for random initialisation") from exc
        model.reset_classifier(1)
        identity["sha256"] = sha256_file(path)
        return model, identity
    if cfg.pretrained != IMAGENET:
        raise WeightsError(
            f"backbone.pretrained={cfg.pretrained!r} is not understood for timm backbone {cfg.name!r}: use "
            f"{IMAGENET!r} (the weights of the model's timm tag), a path to a weights file, or 'none'."
        )
    if cfg.name in LOCAL_ARCHITECTURES:
        raise WeightsError(f"{cfg.name!r} is a random test architecture with no ImageNet weights; use pretrained: none")
    try:
        return _create(cfg.name, num_classes=1, pretrained=True), identity
    except Exception as exc:  # network and hub failures all end here, re-raised with advice (or recorded)
        advice = (
            f"could not load ImageNet weights for {cfg.name!r} ({type(exc).__name__}: {exc}). Without internet "
            "access, download them elsewhere and pass the file (backbone.pretrained=/path/to/resnet50.safetensors), "
            "or use backbone.pretrained=none for random initialisation (its results are labelled as random)."
        )
        if cfg.require_pretrained:
            raise WeightsError(advice) from exc
    warnings.warn(f"{advice} backbone.require_pretrained is false: training starts from RANDOM weights.", stacklevel=2)
    return _create(cfg.name, num_classes=1), {"name": cfg.name, "pretrained": "none", "sha256": None, "random": True}
