"""Each preset holds exactly its paper's settings (from /work/shared/reference/protocols.md)."""

import pytest

from mirage_bench.degradations import PRESETS, expand, parse
from mirage_bench.errors import RegistryError

PAPERS = {
    "genimage": ["downscale(size=112)", "downscale(size=64)", "jpeg(q=65)", "jpeg(q=30)", "blur(s=3)", "blur(s=5)"],
    "ufd-jpeg": ["jpeg(q=100)", "jpeg(q=90)", "jpeg(q=80)", "jpeg(q=70)", "jpeg(q=60)", "jpeg(q=50)", "jpeg(q=40)", "jpeg(q=30)"],
    "ufd-blur": ["blur(s=0)", "blur(s=1)", "blur(s=2)", "blur(s=3)", "blur(s=4)"],
    "aigcdetect": ["jpeg(q=95)", "blur(s=1)", "downscale(factor=0.5)"],
    "sidbench": ["jpeg(q=95)", "jpeg(q=90)", "jpeg(q=50)", "jpeg(q=30)", "blur(s=2)", "blur(s=4)", "chain(blur(s=2),jpeg(q=50))"],
}


@pytest.mark.parametrize("name", sorted(PAPERS))
def test_preset_is_the_papers_list(name: str) -> None:
    assert [d.spec for d in expand([name])] == [parse(s).spec for s in PAPERS[name]]
    assert PRESETS.get(name).citation


def test_no_unexpected_presets() -> None:
    assert PRESETS.names() == sorted(PAPERS)


def test_genimage_downscale_is_bilinear_on_the_shorter_side() -> None:
    preset = PRESETS.get("genimage")
    assert "downscale(size=112,interp=bilinear)" in preset.specs
    assert "shorter side" in preset.notes and "bilinear" in preset.notes


def test_expand_keeps_order_and_drops_repeats() -> None:
    specs = [d.spec for d in expand(["none", "jpeg(quality=30)", "genimage", "sidbench", "jpeg(q=30)"])]
    assert specs[:3] == ["none", "jpeg(q=30)", "downscale(size=112,interp=bilinear)"]
    assert len(specs) == len(set(specs))
    assert specs.index("jpeg(q=95)") > specs.index("blur(s=5)")  # sidbench comes after genimage


def test_expand_suggests_for_unknown_names() -> None:
    with pytest.raises(RegistryError, match="Did you mean 'genimage'"):
        expand(["genimag"])
    with pytest.raises(RegistryError, match="Did you mean 'jpeg'"):
        expand(["jpg(q=3)"])


def test_expand_refuses_a_bare_string() -> None:
    with pytest.raises(TypeError, match="list"):
        expand("genimage")  # type: ignore[arg-type]
