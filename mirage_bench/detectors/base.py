"""The detector contract, written once and obeyed by every detector.

- ``forward(images) -> logits``: images are the normalised ``[B, 3, H, W]`` tensors that the recipe's
  :class:`~mirage_bench.config.InputSpec` produces; the result is one fp32 *fake* logit per image, shape
  ``[B]``. Two-class detectors return ``logit_fake - logit_real``, so ``sigmoid`` equals their softmax.
- ``p_fake(logits)`` is the one explicit conversion to a probability of fake.
- Trainable parameters are exactly those with ``requires_grad``; frozen backbones are held outside the
  module tree (see :meth:`Detector.hold_frozen`), so they are outside the optimiser and the checkpoint.
- ``state_dict()`` is the trainable state; ``backbone_identity()`` names the frozen weights it was trained
  on, so a checkpoint made for another backbone is refused.
- Constructors store their recipe and build modules; training and scoring happen in methods
  (scikit-learn's convention).
"""

from __future__ import annotations

from typing import Any, ClassVar, Iterable

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict
from torch import Tensor, nn

from mirage_bench.config import BackboneConfig, RecipeCard
from mirage_bench.errors import ConfigError, ContractError


class NoParams(BaseModel):
    """Params model of a detector without detector-specific parameters."""

    model_config = ConfigDict(extra="forbid")


def required_backbone(recipe: RecipeCard, example: str) -> BackboneConfig:
    """The recipe's backbone, or one error naming the card, its detector and an example section (``example``)."""
    if recipe.backbone is None:
        raise ConfigError(f"{recipe.source or recipe.name}: detector {recipe.detector!r} needs a 'backbone' section (e.g. {example})")
    return recipe.backbone


class Detector(nn.Module):
    """Base class of every detector. Subclasses set ``Params`` and implement ``forward``."""

    Params: ClassVar[type[BaseModel]] = NoParams
    #: ``--set`` overrides that make the detector tiny and offline (random weights): used by the
    #: conformance suite and the tests, so a new detector is tested by registering it.
    tiny_overrides: ClassVar[tuple[str, ...]] = ()
    #: True when ``state_dict()`` holds every backbone weight (the backbone trains, e.g. CNNSpot): loading a
    #: checkpoint then rebuilds the architecture only, with no weights file or download, and restores the
    #: recorded identity through :meth:`restore_identity`.
    backbone_in_state: ClassVar[bool] = False
    #: True when ``encode(images)`` reads only frozen modules and ``forward(images)`` is exactly
    #: ``check_output(images, head(encode(images)))``: checkpoints with bit-equal frozen weights scored together
    #: then run the encoder once per batch (``engine.trunks``). The conformance check holds a detector to it.
    frozen_encoder: ClassVar[bool] = False

    def __init__(self, recipe: RecipeCard) -> None:
        super().__init__()
        self.recipe = recipe
        self.params = self.Params.model_validate(recipe.params)
        self._frozen: dict[str, nn.Module] = {}

    # -- frozen parts -----------------------------------------------------------------------------
    def hold_frozen(self, name: str, module: nn.Module) -> nn.Module:
        """Keep ``module`` frozen, in eval mode and out of ``parameters()`` and ``state_dict()``."""
        module.requires_grad_(False)
        module.eval()
        self._frozen[name] = module
        object.__setattr__(self, name, module)  # not registered as a submodule, on purpose
        return module

    def frozen_modules(self) -> dict[str, nn.Module]:
        return dict(self._frozen)

    def train(self, mode: bool = True) -> "Detector":
        super().train(mode)
        for module in self._frozen.values():
            module.eval()  # frozen backbones never switch dropout/BN to training mode
        return self

    def _apply(self, fn: Any, recurse: bool = True) -> "Detector":
        # .to(device) / .float() must move the frozen backbone as well.
        super()._apply(fn, recurse)
        for module in self._frozen.values():
            module._apply(fn, recurse)
        return self

    # -- the contract -----------------------------------------------------------------------------
    @property
    def input_spec(self):
        return self.recipe.input

    def forward(self, images: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def p_fake(logits: Tensor) -> Tensor:
        """Probability of fake from the fake logits that ``forward`` returns."""
        return torch.sigmoid(logits.float())

    def trainable_parameters(self) -> list[tuple[str, nn.Parameter]]:
        """The parameters the optimiser sees (those with ``requires_grad``), in a stable order."""
        return [(n, p) for n, p in self.named_parameters() if p.requires_grad]

    def num_trainable(self) -> int:
        return sum(p.numel() for _, p in self.trainable_parameters())

    def training_loss(self, images: Tensor, labels: Tensor, image_ids: Tensor | None = None) -> tuple[Tensor, dict[str, float]]:
        """The training objective for one batch. Default: binary cross-entropy on the fake logit."""
        logits = self(images)
        loss = F.binary_cross_entropy_with_logits(logits.float(), labels.float())
        return loss, {"loss": float(loss.detach())}

    def backbone_identity(self) -> dict[str, Any]:
        """What the frozen or initial weights are: ``{"name", "pretrained", "sha256", "random"}``."""
        return {"name": None, "pretrained": "none", "sha256": None, "random": True}

    def training_state(self) -> dict[str, Tensor]:
        """State that exact resumption needs but inference does not (e.g. MiraGe's memory bank)."""
        return {}

    def load_training_state(self, state: dict[str, Tensor]) -> None:
        if state:
            raise ContractError(f"{type(self).__name__} keeps no training state, got keys {sorted(state)}")

    def restore_identity(self, identity: dict[str, Any]) -> None:
        """Adopt the identity stored in a checkpoint (only for ``backbone_in_state`` detectors)."""
        raise NotImplementedError(f"{type(self).__name__} sets backbone_in_state but does not restore its identity")

    @property
    def random_backbone(self) -> bool:
        """True when the numbers of this detector come from randomly initialised backbone weights."""
        return bool(self.backbone_identity().get("random", False)) and self.recipe.backbone is not None

    def check_output(self, images: Tensor, logits: Tensor) -> Tensor:
        """Assert the output shape and dtype the contract promises."""
        if logits.shape != (images.shape[0],) or logits.dtype != torch.float32:
            raise ContractError(
                f"detector {self.recipe.detector!r}: forward must return fp32 logits of shape "
                f"[{images.shape[0]}], got {tuple(logits.shape)} {logits.dtype}"
            )
        return logits


def held_bytes(detectors: Iterable[Detector]) -> int:
    """Bytes of the distinct storages behind the detectors' parameters and buffers, frozen modules included:
    detectors that share a frozen backbone count it once."""
    tensors = [t for d in detectors for module in (d, *d.frozen_modules().values()) for t in (*module.parameters(), *module.buffers())]
    return sum({t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}.values())
