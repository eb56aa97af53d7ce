"""Canonical spec strings: normalisation, round trips and errors that say what to write."""

import pytest

from mirage_bench.degradations import DEGRADATIONS, PRESETS, parse
from mirage_bench.errors import ConfigError, RegistryError


@pytest.mark.parametrize(
    ("written", "canonical"),
    [
        ("jpeg(q=65)", "jpeg(q=65)"),
        ("jpeg(quality=65)", "jpeg(q=65)"),
        (" JPEG ( 65 ) ", "jpeg(q=65)"),
        ("jpeg(q=65.0)", "jpeg(q=65)"),
        ("blur(sigma=2.0)", "blur(s=2)"),
        ("blur(1.5)", "blur(s=1.5)"),
        ("webp(quality=80)", "webp(q=80)"),
        ("downscale(112)", "downscale(size=112,interp=bilinear)"),
        ("downscale(interpolation=BICUBIC, side=64)", "downscale(size=64,interp=bicubic)"),
        ("downscale(factor=0.5)", "downscale(f=0.5,interp=bilinear)"),
        ("resize(height=20, width=10)", "resize(w=10,h=20,interp=bilinear)"),
        ("noise(sigma=5)", "noise(std=5)"),
        ("crop(224)", "crop(size=224,pos=center)"),
        ("chain(blur(sigma=2), jpeg(quality=50))", "chain(blur(s=2),jpeg(q=50))"),
        ("chain(none, chain(blur(s=2)), jpeg(q=50))", "chain(blur(s=2),jpeg(q=50))"),
        ("chain(jpeg(q=50))", "jpeg(q=50)"),
        ("chain()", "none"),
        ("chain(none)", "none"),
        ("none", "none"),
        ("NONE()", "none"),
    ],
)
def test_canonical_spec(written: str, canonical: str) -> None:
    degradation = parse(written)
    assert degradation.spec == canonical
    assert parse(degradation.spec).spec == canonical
    assert parse(degradation.spec) == degradation and hash(parse(canonical)) == hash(degradation)


def test_every_preset_spec_is_already_canonical() -> None:
    for name in PRESETS.names():
        for spec in PRESETS.get(name).specs:
            assert parse(spec).spec == spec, (name, spec)


def test_is_random_only_where_the_seed_matters() -> None:
    assert not parse("jpeg(q=50)").is_random
    assert not parse("chain(blur(s=1),downscale(f=0.5))").is_random
    assert parse("noise(std=3)").is_random
    assert parse("crop(8,random)").is_random and not parse("crop(8)").is_random
    assert parse("chain(jpeg(q=90),noise(std=1))").is_random


def test_kinds_are_registered() -> None:
    assert {"jpeg", "webp", "blur", "downscale", "resize", "noise", "crop", "chain", "none"} <= set(DEGRADATIONS.names())


def test_unknown_kind_suggests() -> None:
    with pytest.raises(RegistryError, match="Did you mean 'jpeg'"):
        parse("jpg(q=50)")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("jpeg(q=65.5)", "fractional"),
        ("jpeg(q=0)", "greater than or equal to 1"),
        ("jpeg(q=101)", "less than or equal to 100"),
        ("jpeg(q=5, quality=6)", "twice"),
        ("jpeg(level=5)", "unknown key 'level'"),
        ("jpeg", "missing required key 'q'"),
        ("blur(s=-1)", "greater than or equal to 0"),
        ("downscale(size=64, f=0.5)", "exactly one of size, f"),
        ("downscale(f=2)", "less than 1"),
        ("downscale(64, cubic)", "interp"),
        ("resize(w=10)", "both w and h"),
        ("chain(3)", "takes degradations"),
        ("chain(blur(s=1), q=3)", "not keywords"),
        ("jpeg(q=blur(s=1))", "not nested"),
        ("none(3)", "no arguments"),
        ("jpeg(q=5", "missing '\\)'"),
        ("jpeg(q=5))", "unexpected '\\)'"),
        ("jpeg(q=5;)", "unexpected character ';'"),
        ("jpeg(q=5, 6)", "positional argument after keyword"),
        ("", "non-empty"),
    ],
)
def test_bad_specs_say_what_is_wrong(bad: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse(bad)


def test_degradations_pickle_for_worker_processes() -> None:
    import pickle

    for spec in ("jpeg(q=65)", "chain(blur(s=2),noise(std=3))", "none", "downscale(f=0.5,interp=bicubic)"):
        assert pickle.loads(pickle.dumps(parse(spec))).spec == spec
