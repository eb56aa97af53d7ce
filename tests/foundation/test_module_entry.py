"""``python -m mirage_bench`` runs the CLI, and importing its ``__main__`` module does not."""

from __future__ import annotations

import runpy

import mirage_bench.cli


def test_the_module_entry_runs_the_cli_only_as_the_main_program(monkeypatch):
    """Spawned worker processes (macOS and Windows start workers that way) import the parent's main module under the
    name ``__mp_main__``; an unguarded ``main()`` there would start the command again in every worker."""
    calls: list[str] = []
    monkeypatch.setattr(mirage_bench.cli, "main", lambda: calls.append("main"))
    runpy.run_module("mirage_bench.__main__", run_name="__mp_main__")
    assert calls == []
    runpy.run_module("mirage_bench.__main__", run_name="__main__")
    assert calls == ["main"]
