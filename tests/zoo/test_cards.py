"""Published cards: each validates against its recipe, names its source commit and licence, and never guesses a hash."""

from __future__ import annotations

import pytest

from mirage_bench.cards import card_paths
from mirage_bench.config import validate
from mirage_bench.errors import ConfigError
from mirage_bench.zoo.card import PublishedCard, list_published, load_published, published_paths


def test_every_published_card_loads_into_its_recipe_and_says_where_it_comes_from() -> None:
    cards = list_published()
    assert {"univfd-ojha2023", "cnnspot-wang2020-p05", "cnnspot-wang2020-p01", "npr-tan2024", "coop-khan2024"} <= {c.name for c in cards}
    for card in cards:
        assert card.licence and card.citation and "/tree/" in card.source, card.name
        assert card.weights.sha256 or "unpinned" in card.weights.note, card.name
        assert card.label == f"{card.recipe} (published)"
    assert not set(published_paths()) & set(card_paths("detectors")), "published cards are not trainable recipes"


@pytest.mark.parametrize(("a", "b"), [("cnnspot-wang2020-p05", "cnnspot-wang2020-p01"), ("npr-tan2024", "npr-tan2024-genimage")])
def test_sibling_checkpoints_share_the_file_format(a: str, b: str) -> None:
    """One logits test covers both files of a pair (tests/zoo/test_published_logits.py)."""
    first, second = load_published(a), load_published(b)
    assert first.key_map.rename == second.key_map.rename and first.weights.state_dict_key == second.weights.state_dict_key


def test_a_hash_is_never_invented_and_an_unpinned_file_says_so() -> None:
    data = load_published("npr-tan2024").model_dump(exclude={"path"})
    data["weights"]["sha256"] = "not-a-hash"
    with pytest.raises(ConfigError, match="sha256 must be 64 lower-case hex digits"):
        validate(PublishedCard, data, "card")
    data["weights"].update(sha256=None, note="download it")
    with pytest.raises(ConfigError, match="needs a note saying so"):
        validate(PublishedCard, data, "card")


def test_a_card_whose_detector_is_not_its_recipes_is_refused(tmp_path) -> None:
    text = load_published("npr-tan2024").path
    bad = tmp_path / "bad.yaml"
    bad.write_text(open(text).read().replace("detector: npr", "detector: univfd"))
    with pytest.raises(ConfigError, match="detector 'univfd' is not the one recipe 'npr' uses \\('npr'\\)"):
        load_published(str(bad))
    with pytest.raises(ConfigError, match="unknown published card 'npr-tan2042'. Did you mean 'npr-tan2024'"):
        load_published("npr-tan2042")


def test_published_numbers_name_test_subsets_of_their_protocol() -> None:
    from mirage_bench.protocol import load_protocol

    for card in list_published():
        for numbers in card.reproduction:
            test = load_protocol(numbers.protocol).test
            assert {s.subset for s in numbers.scores} <= set(test), (card.name, numbers.protocol)
