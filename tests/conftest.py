"""Test-wide settings (a wide, colourless terminal so rich tables do not wrap differently per machine) and shared fixtures."""

import importlib.util
import os
from pathlib import Path

import pytest

os.environ.setdefault("COLUMNS", "200")
os.environ.setdefault("NO_COLOR", "1")


@pytest.fixture(scope="session")
def engine_helpers():
    """``tests/engine/helpers.py`` (tiny hand-built benchmarks: PNG trees, cards), for tests outside ``tests/engine``."""
    spec = importlib.util.spec_from_file_location("engine_test_helpers", Path(__file__).parent / "engine" / "helpers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
