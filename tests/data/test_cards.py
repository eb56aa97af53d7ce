"""The protocol cards pin the publishers' folder names, pairings and rules."""

from __future__ import annotations

import pytest

from mirage_bench.errors import ConfigError
from mirage_bench.protocol import list_protocols, load_protocol


def test_every_card_loads():
    names = {card.name for card in list_protocols()}
    assert {"genimage", "genimage-matrix", "genimage-degrade", "ufd", "forensynths", "aigcdetect", "wildrf",
            "synthbuster", "chameleon"} <= names


def test_genimage_pins_the_publisher_folders():
    card = load_protocol("genimage")
    folders = {key: (g.folder, g.aliases[0]) for key, g in card.generators.items()}
    assert folders == {
        "adm": ("ADM", "imagenet_ai_0508_adm"), "biggan": ("BigGAN", "imagenet_ai_0419_biggan"),
        "glide": ("glide", "imagenet_glide"), "midjourney": ("Midjourney", "imagenet_midjourney"),
        "sdv14": ("stable_diffusion_v_1_4", "imagenet_ai_0419_sdv4"), "sdv15": ("stable_diffusion_v_1_5", "imagenet_ai_0424_sdv5"),
        "vqdm": ("VQDM", "imagenet_ai_0419_vqdm"), "wukong": ("wukong", "imagenet_ai_0424_wukong"),
    }
    assert (card.train, card.train_split, card.test_split) == (["sdv14"], "train", "val")
    assert card.generator_for_folder("IMAGENET_AI_0419_SDV4") == "sdv14"


def test_sitd_is_published_as_seeingdark():
    for name in ("forensynths", "ufd"):
        assert load_protocol(name).generator_for_folder("seeingdark") == "sitd"


def test_ufd_pairs_diffusion_sets_with_their_reals():
    card = load_protocol("ufd")
    assert card.generators["guided"].reals == "imagenet"
    assert {k for k, g in card.generators.items() if g.reals == "laion"} == {
        "ldm_200", "ldm_200_cfg", "ldm_100", "glide_100_27", "glide_50_27", "glide_100_10", "dalle"}


def test_degrade_card_is_table5_sd14_val_only():
    card = load_protocol("genimage-degrade")
    assert (card.train, card.test, card.test_split, card.degradations) == (["sdv14"], ["sdv14"], "val", ["genimage"])


@pytest.mark.parametrize("overrides,message", [
    (["generators.sdv15.aliases=[imagenet_ai_0419_sdv4]"], "claimed by generators 'sdv14' and 'sdv15'"),
    (["train=[]"], "'train' is empty"),
    (["generators.adm.reals=laion"], "not listed under 'generators'"),
])
def test_inconsistent_cards_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_protocol("genimage", overrides)


@pytest.mark.parametrize("metrics,message", [
    ("[accuracy_typo]", r"metrics = \['accuracy_typo'\]: .*unknown metric 'accuracy_typo'\. Available: acc, acc_cal, ap, auroc"),
    ("[acc, aap]", r"unknown metric 'aap'\. Did you mean 'ap'\? Available: acc, "),
])
def test_unknown_metric_names_are_refused_with_suggestions(metrics, message):
    with pytest.raises(ConfigError, match=message):
        load_protocol("chameleon", [f"metrics={metrics}"])
    assert load_protocol("chameleon", ["metrics=[ap, oracle_acc]"]).metrics == ["ap", "oracle_acc"]
