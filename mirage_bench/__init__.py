"""mirage-bench: a benchmark harness for detectors of AI-generated images.

``mirage_bench.run(mirage_bench.RunConfig(...))`` runs a benchmark and returns its typed ``RunRecord``; ``plan``
shows what a run would do and ``report`` computes the tables of stored runs. They are imported on first use, so
``import mirage_bench`` stays cheap for the command line.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_PUBLIC = {"RunConfig": "mirage_bench.runconfig", "RunRecord": "mirage_bench.engine.record", "run": "mirage_bench.api",
           "plan": "mirage_bench.api", "report": "mirage_bench.api"}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'mirage_bench' has no attribute {name!r}")
    return getattr(importlib.import_module(_PUBLIC[name]), name)
