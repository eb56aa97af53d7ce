"""``python -m mirage_bench`` and ``python -m mirage_bench.cli`` run the CLI, and importing their ``__main__`` modules
does not."""

from __future__ import annotations

import runpy
import subprocess
import sys

import pytest

import mirage_bench.cli

ENTRIES = ["mirage_bench", "mirage_bench.cli"]


@pytest.mark.parametrize("package", ENTRIES)
def test_the_module_entry_runs_the_cli_only_as_the_main_program(monkeypatch, package):
    """Spawned worker processes (macOS and Windows start workers that way) import the parent's main module under the
    name ``__mp_main__``; an unguarded ``main()`` there would start the command again in every worker."""
    calls: list[str] = []
    monkeypatch.setattr(mirage_bench.cli, "main", lambda: calls.append("main"))
    runpy.run_module(f"{package}.__main__", run_name="__mp_main__")
    assert calls == []
    runpy.run_module(f"{package}.__main__", run_name="__main__")
    assert calls == ["main"]


@pytest.mark.parametrize("package", ENTRIES)
def test_python_dash_m_runs_the_command(package):
    result = subprocess.run([sys.executable, "-m", package, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Usage: python -m" in result.stdout and "data" in result.stdout
