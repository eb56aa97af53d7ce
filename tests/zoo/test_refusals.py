"""What a published load refuses, each with one message naming the thing and the fix: a renamed or reshaped key,
a file whose sha256 is not the card's, a missing file offline, a failed or wrong download."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.request import urlopen

import pytest
import torch

from mirage_bench.errors import CheckpointError, WeightsError
from mirage_bench.zoo.card import load_published
from mirage_bench.zoo import fetch
from mirage_bench.zoo.fetch import cache_path, resolve
from mirage_bench.zoo.load import load_published_detector

from zoo_helpers import FIXTURE, FIXTURE_SHA256, TINY_CLIP, save

UNIVFD = "univfd-ojha2023"


def fixture_state() -> dict[str, torch.Tensor]:
    return torch.load(FIXTURE, map_location="cpu", weights_only=True)


def unpinned_univfd():
    """The univfd card with its sha256 removed (as the unpinned cards are), so edited files reach the key check."""
    card = load_published(UNIVFD)
    return card.model_copy(update={"weights": card.weights.model_copy(update={"sha256": None, "note": "unpinned: test"})})


def test_a_renamed_key_is_refused_by_its_published_and_our_names(tmp_path: Path) -> None:
    state = fixture_state()
    state["linear.weight"] = state.pop("weight")
    with pytest.raises(CheckpointError) as err:
        load_published_detector(unpinned_univfd(), weights=save(state, tmp_path / "fc.pth"), overrides=TINY_CLIP)
    assert "unexpected keys (published -> ours): linear.weight -> fc.linear.weight" in str(err.value)
    assert "missing keys (ours): fc.weight" in str(err.value)


def test_a_reshaped_key_is_refused_with_both_shapes(tmp_path: Path) -> None:
    state = fixture_state()
    state["weight"] = torch.zeros(1, 512)
    with pytest.raises(CheckpointError, match=r"shape mismatch: published weight \[1, 512\] vs ours fc.weight \[1, 768\]"):
        load_published_detector(unpinned_univfd(), weights=save(state, tmp_path / "fc.pth"), overrides=TINY_CLIP)


def test_an_ignored_key_the_file_lacks_is_refused(tmp_path: Path) -> None:
    card = load_published("coop-khan2024")
    state = {"ctx": torch.zeros(16, 48), "token_prefix": torch.zeros(2, 1, 48)}
    with pytest.raises(CheckpointError, match="keys the card ignores are not in the file: token_suffix"):
        load_published_detector(card, weights=save({"state_dict": state}, tmp_path / "m.pth"), overrides=TINY_CLIP)


def test_a_file_with_another_sha256_is_refused_before_it_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = save({"weight": torch.zeros(1, 768), "bias": torch.zeros(1)}, tmp_path / "fc_weights.pth")
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("an unverified file was read"))
    card = load_published(UNIVFD)
    with pytest.raises(WeightsError, match=f"expects {FIXTURE_SHA256}: it is another or a damaged file, and is refused"):
        resolve(card, other)
    cached = cache_path(card)
    cached.parent.mkdir(parents=True)
    shutil.copyfile(other, cached)
    with pytest.raises(WeightsError, match=f"{cached} has sha256 .* refused"):
        load_published_detector(card, offline=True, overrides=TINY_CLIP)


def test_offline_and_missing_gives_the_url_the_sha256_and_the_path() -> None:
    card = load_published(UNIVFD)
    with pytest.raises(WeightsError) as err:
        resolve(card, offline=True)
    message = str(err.value)
    assert card.weights.url in message and FIXTURE_SHA256 in message and f"put it at {cache_path(card)}" in message
    assert "--offline was given" in message


def test_a_manual_source_is_never_downloaded() -> None:
    card = load_published("npr-tan2024-genimage")
    with pytest.raises(WeightsError, match="it is downloaded by hand: download https://drive.google.com/.*unpinned"):
        resolve(card)


def test_a_download_is_verified_before_it_takes_the_cache_name(monkeypatch: pytest.MonkeyPatch) -> None:
    card = load_published(UNIVFD)
    served = {"file": FIXTURE}
    monkeypatch.setattr(fetch, "urlopen", lambda request: urlopen(served["file"].as_uri()) if request.full_url == card.weights.url else None)
    served["file"] = Path(__file__)  # the wrong bytes: refused, and nothing is left under the cache's name
    with pytest.raises(WeightsError, match="refused"):
        resolve(card)
    assert not cache_path(card).exists() and not any(cache_path(card).parent.glob("*"))
    served["file"] = FIXTURE
    local = resolve(card)
    assert local.path == cache_path(card) and local.sha256 == FIXTURE_SHA256


def test_a_failed_download_names_the_url_sha256_and_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(request: object) -> None:
        raise OSError("Network is unreachable")

    monkeypatch.setattr(fetch, "urlopen", unreachable)
    card = load_published(UNIVFD)
    with pytest.raises(WeightsError, match=r"the download failed \(Network is unreachable\): download https://github.com/"):
        resolve(card)
    assert not cache_path(card).exists()


def test_hf_hub_sources_go_through_huggingface_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub

    card = load_published(UNIVFD)
    card = card.model_copy(update={"weights": card.weights.model_copy(update={"url": "hf-hub:org/repo/fc_weights.pth"})})
    asked = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda repo, name: asked.append((repo, name)) or str(FIXTURE))
    assert resolve(card).path == FIXTURE and asked == [("org/repo", "fc_weights.pth")]


def test_a_damaged_unpinned_file_is_refused_before_torch_reads_it(tmp_path: Path) -> None:
    file = save(fixture_state(), tmp_path / "fc.pth")
    data = bytearray(file.read_bytes())
    offset = data.index(fixture_state()["weight"].numpy().tobytes()[:16])
    data[offset] ^= 0x01  # one flipped bit in the weights: torch.load alone would load it silently
    file.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="are damaged \\(record .* fails its CRC-32 check\\)"):
        load_published_detector(unpinned_univfd(), weights=file, overrides=TINY_CLIP)
