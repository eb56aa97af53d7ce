"""Loading a CLIP backbone from open_clip: a model name plus a pretrained tag, a local file, or none.

The rules come from the field's failures (see shared pitfalls): weights that were asked for either load or
raise :class:`WeightsError` (``require_pretrained=True``, never a logged warning and a random model); the
QuickGELU variant must match OpenAI's weights (a mismatch is an error, not open_clip's warning); a local
file is identified by its sha256 so that checkpoints name the exact weights they were trained on.
``pretrained: none`` builds random weights, which the identity records (``random: True``) and every table
labels. Our tiny test architecture ``mb-tiny-clip`` is registered from ``mirage_bench/model_configs``. The
residual blocks' attention runs as :class:`~mirage_bench.detectors.clip.attention.SelfAttention` (same
parameters, same function, no layout copies), and QuickGELU as one op when scoring
(:mod:`~mirage_bench.detectors.clip.quick_gelu`). The detectors that read the image tower's class token alone also
compute its last block for that token only (:mod:`~mirage_bench.detectors.clip.class_token_block`); a model from
``load_clip`` itself keeps every token's output.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from mirage_bench.config import BackboneConfig
from mirage_bench.detectors.clip.attention import use_self_attention
from mirage_bench.detectors.clip.quick_gelu import use_fused_quick_gelu
from mirage_bench.detectors.infra.weights_file import is_weights_path, load_error, refused_objects
from mirage_bench.errors import WeightsError

MODEL_CONFIG_DIR = Path(__file__).resolve().parents[2] / "model_configs"
_registered = False
RANDOM_INIT_SEED = 0  # seed of 'pretrained: none' weights
#: How a CLIP detector's card names its backbone, for messages that ask for one.
CLIP_BACKBONE_EXAMPLE = "{name: ViT-L-14-quickgelu, pretrained: openai}"


def register_model_configs() -> None:
    """Make our JSON architectures (``mb-tiny-clip``) known to open_clip, once."""
    global _registered
    if not _registered:
        import open_clip

        open_clip.add_model_config(MODEL_CONFIG_DIR)
        _registered = True


class _RandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "Model initialized randomly" not in record.getMessage()


@contextmanager
def _without_random_init_warning() -> Iterator[None]:
    """Drop open_clip's "No pretrained weights loaded ... initialized randomly" log line for ``pretrained:
    none``: the random weights were asked for, the identity records them and every table marks them, while the
    line (once per detector built, 15 times in the default run) reads like a failed download."""
    drop = _RandomInitWarning()
    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def load_clip(cfg: BackboneConfig) -> tuple[Any, dict[str, Any]]:
    """Build ``cfg.name`` with its weights; returns ``(open_clip.CLIP in eval mode, identity dict)``."""
    import open_clip

    from mirage_bench.detectors.infra.checkpoint import sha256_file

    register_model_configs()
    if cfg.name not in open_clip.list_models():
        import difflib

        close = difflib.get_close_matches(cfg.name, open_clip.list_models(), n=3, cutoff=0.6)
        raise WeightsError(
            f"open_clip has no architecture {cfg.name!r}."
            + (f" Did you mean {' or '.join(map(repr, close))}?" if close else "")
            + " See open_clip.list_models()."
        )
    identity: dict[str, Any] = {"name": cfg.name, "pretrained": cfg.pretrained, "sha256": None, "random": cfg.is_random}
    if cfg.is_random:
        # Random weights come from a fixed seed, without disturbing the caller's RNG: a checkpoint trained on
        # a random frozen backbone reloads onto the same weights. On the default device, so that building
        # under ``torch.device('meta')`` (parameter counting) works: open_clip otherwise moves the model to
        # 'cpu', which a meta tensor refuses.
        with torch.random.fork_rng(devices=[]), _without_random_init_warning():
            torch.manual_seed(RANDOM_INIT_SEED)
            model = open_clip.create_model(cfg.name, pretrained=None, device=torch.get_default_device())
        identity.update(pretrained="none", init_seed=RANDOM_INIT_SEED)
    elif is_weights_path(cfg.pretrained):
        path = Path(cfg.pretrained).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"backbone weights file {path} does not exist. Pass an existing file, an open_clip pretrained "
                f"tag ({', '.join(open_clip.list_pretrained_tags_by_model(cfg.name)) or 'none known'}), or "
                "pretrained: none for a random backbone."
            )
        identity["sha256"] = sha256_file(path)
        model = _create(open_clip, cfg, str(path), lambda exc: refused_objects(path, exc) or (
            f"weights file {path} cannot be loaded into backbone {cfg.name!r} ({load_error(exc)}). Pass weights "
            f"made for {cfg.name!r} (or set the architecture they were made for with --backbone / backbone.name), "
            "or pretrained: none for a random backbone (its results are labelled as random)."))
    else:
        tags = open_clip.list_pretrained_tags_by_model(cfg.name)
        if cfg.pretrained not in tags:
            raise WeightsError(
                f"open_clip has no pretrained tag {cfg.pretrained!r} for {cfg.name!r}; known tags: "
                f"{', '.join(tags) or '(none)'}. Or pass a local weights file, or pretrained: none."
            )
        tag_cfg = open_clip.get_pretrained_cfg(cfg.name, cfg.pretrained)
        model_cfg = open_clip.get_model_config(cfg.name) or {}
        if bool(tag_cfg.get("quick_gelu", False)) != bool(model_cfg.get("quick_gelu", False)):
            raise WeightsError(
                f"pretrained tag {cfg.pretrained!r} was trained with quick_gelu={tag_cfg.get('quick_gelu', False)}, "
                f"but architecture {cfg.name!r} uses quick_gelu={model_cfg.get('quick_gelu', False)}: the features "
                f"would be silently wrong. Use {cfg.name + '-quickgelu' if tag_cfg.get('quick_gelu') else cfg.name.removesuffix('-quickgelu')!r}."
            )
        model = _create(open_clip, cfg, cfg.pretrained, lambda exc: (
            f"could not load weights {cfg.pretrained!r} for backbone {cfg.name!r}: {type(exc).__name__}: {exc}. "
            "Without internet access, download the weights elsewhere and pass the file "
            "(backbone.pretrained=/path/to/weights.safetensors), or use backbone.pretrained=none for a random "
            "backbone (its results are labelled as random)."))
    use_self_attention(model)
    use_fused_quick_gelu(model)
    model.eval().requires_grad_(False)
    return model, identity


def _create(open_clip: Any, cfg: BackboneConfig, pretrained: str, advice: Callable[[Exception], str]) -> Any:
    """open_clip's model with ``pretrained`` loaded (strictly) on the default device (``torch.device('meta')``
    for the pre-flight: then only the file's shapes and keys are compared); a failure is a :class:`WeightsError`
    with ``advice(exc)``: a tag's is about downloading, a file's about what the file holds."""
    try:
        return open_clip.create_model(cfg.name, pretrained=pretrained, require_pretrained=cfg.require_pretrained,
                                      device=torch.get_default_device())
    except Exception as exc:  # network, hub, unpickling and strict-load failures all end here, re-raised with advice
        raise WeightsError(advice(exc)) from exc
