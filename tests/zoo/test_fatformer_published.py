"""FatFormer's published card: a file named as the authors' CLIPModel.state_dict() names its tensors (read from
Michel-liu/FatFormer@febc24c models/clip_models.py and models/clip/model.py: the whole model, CLIP and its two
aliases included) loads strictly through the card and scores exactly as the detector whose weights it holds."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mirage_bench.detectors.infra.build import build_detector
from mirage_bench.errors import CheckpointError
from mirage_bench.zoo.card import load_published
from mirage_bench.zoo.load import load_published_detector, published_recipe

from zoo_helpers import TINY_CLIP, save

ADAPTER_BLOCKS = (7, 15, 23)  # ViT-L/14 with --num_vit_adapter 3: add_adapter[(i + 1) * 8 - 1]
HAAR_BUFFERS = {"dwt_transform": ("h0_col", "h1_col", "h0_row", "h1_row"), "idwt_transform": ("g0_col", "g1_col", "g0_row", "g1_row")}


def authors_state(detector: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The tensors of ``detector`` under the names the authors' CLIPModel gives them."""
    clip = detector.clip
    state = {f"clip_model.{k}": v for k, v in clip.state_dict().items()}
    for block, adapter in zip(ADAPTER_BLOCKS, detector.adapters):  # ResidualAttentionBlock.forgery_aware_adapter
        prefix = f"visual.transformer.resblocks.{block}.forgery_aware_adapter."
        tensors = {k: v for k, v in adapter.state_dict().items()}
        tensors |= {f"{module}.{name}": torch.full((1, 1, 2, 1), 0.5 ** 0.5) for module, names in HAAR_BUFFERS.items() for name in names}
        state |= {f"clip_model.{prefix}{k}": v for k, v in tensors.items()}
    state |= {k.replace("clip_model.visual.", "image_encoder.", 1): v for k, v in state.items() if k.startswith("clip_model.visual.")}
    for name in ("transformer.", "positional_embedding", "ln_final.", "text_projection"):  # TextEncoder's modules
        state |= {k.replace("clip_model.", "text_encoder.", 1): v for k, v in state.items() if k.startswith(f"clip_model.{name}")}
    state["logit_scale"] = clip.logit_scale.detach()
    lga = "language_guided_alignment."
    state[f"{lga}ctx"] = detector.prompts.text_prompts[0].detach()
    state[f"{lga}token_prefix"], state[f"{lga}token_suffix"] = torch.zeros(2, 1, 48), torch.zeros(2, 68, 48)
    enhancer = detector.enhancer.state_dict()
    state |= {f"{lga}patch_basaed_enhancer.{k[len('attn.'):]}": v for k, v in enhancer.items() if k.startswith("attn.")}
    state |= {f"{lga}{k}": v for k, v in enhancer.items() if not k.startswith("attn.")}
    interactor = detector.interactor.state_dict()  # CLIPModel's own text_guided_interactor, norm1, linear1, linear2, norm2
    state |= {f"text_guided_interactor.{k[len('attn.'):]}": v for k, v in interactor.items() if k.startswith("attn.")}
    state |= {k: v for k, v in interactor.items() if not k.startswith("attn.")}
    return state


def trained_looking_detector() -> torch.nn.Module:
    card = load_published("fatformer-liu2024")
    torch.manual_seed(3)
    detector = build_detector(published_recipe(card, TINY_CLIP)).eval()
    with torch.no_grad():
        for _, parameter in detector.trainable_parameters():
            parameter.normal_(0.0, 0.2)
    return detector


def test_a_file_saved_as_the_authors_model_loads_strictly_and_scores_the_same(tmp_path: Path) -> None:
    source = trained_looking_detector()
    file = save({"model": authors_state(source)}, tmp_path / "fatformer_4class_ckpt.pth")
    detector = load_published_detector(load_published("fatformer-liu2024"), weights=file, overrides=TINY_CLIP)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(detector(images), source(images))
    assert torch.equal(detector.adapters[2].freq_scale, source.adapters[2].freq_scale)


@pytest.mark.parametrize(("dropped", "named"), [
    ("clip_model.", "clip_model.visual.conv1.weight -> clip_model.visual.conv1.weight"),  # the backbone prefix
    ("clip_model.visual.transformer.resblocks.7.forgery_aware_adapter.dwt_transform.h0_col",  # a whole key beats a rename
     "forgery_aware_adapter.dwt_transform.h0_col -> adapters.0.dwt_transform.h0_col"),
])
def test_a_key_the_card_no_longer_ignores_is_refused_by_name(tmp_path: Path, dropped: str, named: str) -> None:
    card = load_published("fatformer-liu2024")
    del card.key_map.ignore[dropped]
    file = save({"model": authors_state(trained_looking_detector())}, tmp_path / "fatformer_4class_ckpt.pth")
    with pytest.raises(CheckpointError, match=f"unexpected keys .*{named}"):
        load_published_detector(card, weights=file, overrides=TINY_CLIP)
