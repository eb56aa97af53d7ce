"""The generic registry: duplicates refused, unknown names suggested, plugin errors surfaced as themselves."""

from __future__ import annotations

import sys
import textwrap

import pytest

from mirage_bench.errors import RegistryError
from mirage_bench.registry import Registry


def test_register_and_get_sorted_names():
    reg: Registry[int] = Registry("widget")
    reg.register("beta", 2)
    reg.register("alpha", 1)
    assert reg.get("alpha") == 1
    assert reg.names() == ["alpha", "beta"]
    assert "beta" in reg and "gamma" not in reg


def test_duplicate_name_is_refused_naming_both_origins():
    reg: Registry[object] = Registry("widget")

    @reg.register("thing")
    class First:  # noqa: D401 - test fixture
        pass

    with pytest.raises(RegistryError, match=r"widget 'thing' is already registered \(by .*First\)"):

        @reg.register("thing")
        class Second:
            pass


def test_unknown_name_suggests_close_matches_and_lists_all():
    reg: Registry[int] = Registry("detector")
    for i, name in enumerate(["mirage", "cnnspot", "univfd"]):
        reg.register(name, i)
    with pytest.raises(RegistryError) as info:
        reg.get("mirag")
    message = str(info.value)
    assert "unknown detector 'mirag'" in message
    assert "Did you mean 'mirage'?" in message
    assert "Available: cnnspot, mirage, univfd" in message


def test_lazy_entry_imports_only_when_used(tmp_path, monkeypatch):
    (tmp_path / "lazy_mod_for_registry.py").write_text("VALUE = 42\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[int] = Registry("widget")
    reg.register_lazy("answer", "lazy_mod_for_registry:VALUE")
    assert "lazy_mod_for_registry" not in sys.modules
    assert reg.get("answer") == 42


def test_broken_plugin_raises_its_own_import_error(tmp_path, monkeypatch):
    (tmp_path / "broken_plugin_mod.py").write_text("import a_module_that_does_not_exist_anywhere\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[object] = Registry("detector")
    reg.register_lazy("broken", "broken_plugin_mod:Detector")
    with pytest.raises(ModuleNotFoundError) as info:
        reg.get("broken")
    assert info.value.name == "a_module_that_does_not_exist_anywhere"
    assert any("while importing detector 'broken'" in note for note in info.value.__notes__)


def test_entry_point_group_is_discovered(tmp_path, monkeypatch):
    site = tmp_path / "site"
    site.mkdir()
    (site / "ep_plugin_mod.py").write_text("OBJ = 'from plugin'\n")
    dist = site / "ep_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent("""
        [test_registry.widgets]
        plugged = ep_plugin_mod:OBJ
    """))
    monkeypatch.syspath_prepend(str(site))
    reg: Registry[str] = Registry("widget", entry_point_group="test_registry.widgets")
    assert reg.names() == ["plugged"]
    assert reg.get("plugged") == "from plugin"
    assert "ep-plugin" in reg.origin("plugged")
