"""Typed configuration: precedence, overrides, and error messages that name file, key, value and what is allowed."""

from __future__ import annotations

import pytest

from mirage_bench.cards import load_recipe
from mirage_bench.config import apply_overrides, parse_overrides
from mirage_bench.errors import ConfigError


def write_card(directory, name, body):
    path = directory / f"{name}.yaml"
    path.write_text(body)
    return path


def test_precedence_defaults_card_then_set(tmp_path):
    write_card(tmp_path, "mycnn", "detector: tinycnn\ntrain: {lr: 0.01}\n")
    recipe = load_recipe("mycnn", [], [tmp_path])
    assert recipe.train.lr == 0.01  # card over default
    assert recipe.train.optimizer == "adam"  # default kept
    recipe = load_recipe("mycnn", ["train.lr=2e-5", "train.schedule.kind=cosine"], [tmp_path])
    assert recipe.train.lr == 2e-5 and recipe.train.schedule.kind == "cosine"


def test_base_card_is_merged_under_the_variant(tmp_path):
    write_card(tmp_path, "variant", "base: tinycnn\nvariant_of: tinycnn\nparams: {width: 8}\n")
    recipe = load_recipe("variant", [], [tmp_path])
    assert recipe.name == "variant"
    assert recipe.params["width"] == 8
    assert recipe.params["stages"] == 3  # from the base card
    assert recipe.train.lr == load_recipe("tinycnn").train.lr


def test_unknown_key_names_file_key_value_and_allowed_keys(tmp_path):
    path = write_card(tmp_path, "typo", "detector: tinycnn\ntrain: {lrate: 0.1}\n")
    with pytest.raises(ConfigError) as info:
        load_recipe("typo", [], [tmp_path])
    message = str(info.value)
    assert str(path) in message
    assert "unknown key 'train.lrate' (value 0.1)" in message
    assert "allowed keys here:" in message and "lr" in message.split("allowed keys here:")[1]


def test_wrong_type_names_key_value_and_expectation(tmp_path):
    write_card(tmp_path, "badtype", "detector: tinycnn\ntrain: {batch_size: many}\n")
    with pytest.raises(ConfigError) as info:
        load_recipe("badtype", [], [tmp_path])
    message = str(info.value)
    assert "train.batch_size = 'many'" in message
    assert "valid integer" in message


def test_detector_params_are_validated_by_the_detector(tmp_path):
    write_card(tmp_path, "badparam", "detector: tinycnn\nparams: {widht: 4}\n")
    with pytest.raises(ConfigError) as info:
        load_recipe("badparam", [], [tmp_path])
    message = str(info.value)
    assert "section 'params' of detector 'tinycnn'" in message
    assert "unknown key 'widht'" in message and "stages, width" in message


def test_bad_override_syntax_and_unknown_override_key():
    with pytest.raises(ConfigError, match="must look like 'key.sub=value'"):
        parse_overrides(["train.lr"])
    with pytest.raises(ConfigError, match="unknown key 'train.lrr'"):
        load_recipe("tinycnn", ["train.lrr=1"])


def test_override_values_are_typed_yaml_scalars():
    data = apply_overrides({"train": {"lr": 1.0}}, ["train.lr=1e-4", "train.bf16=false", "input.mean=[0.1, 0.2, 0.3]"])
    assert data == {"train": {"lr": 1e-4, "bf16": False}, "input": {"mean": [0.1, 0.2, 0.3]}}


def test_unknown_card_suggests(tmp_path):
    with pytest.raises(ConfigError, match="Did you mean 'tinycnn'"):
        load_recipe("tinycnm")


def test_duplicate_card_names_are_refused(tmp_path):
    write_card(tmp_path, "tinycnn", "detector: tinycnn\n")
    with pytest.raises(ConfigError, match="defined twice"):
        load_recipe("tinycnn", [], [tmp_path])


def test_unknown_detector_implementation_in_card(tmp_path):
    write_card(tmp_path, "ghost", "detector: tinycn\n")
    with pytest.raises(Exception, match="Did you mean 'tinycnn'"):
        load_recipe("ghost", [], [tmp_path])
