"""The built-in mini benchmark: real photo crops and fakes from four locally trained generator families.

Nothing is downloaded: the reals are crops of photos that ship inside scikit-image and scikit-learn, the
fakes come from small generators trained on the training-split crops (see :mod:`mirage_bench.mini.build`).
A default set built with ``build_mini`` ships inside the package, so a benchmark run starts at once.
"""

from __future__ import annotations

from pathlib import Path

_DATA_DIR = Path(__file__).resolve().parent / "data"


def default_root() -> Path:
    """The shipped mini set (GenImage layout: ``{generator}/{train,val}/{ai,nature}/*.png``)."""
    return _DATA_DIR


__all__ = ["default_root"]
