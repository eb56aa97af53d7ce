"""The detector registry. Built-in detectors register lazily; third parties use the entry-point group.

A third-party package declares, in its ``pyproject.toml``::

    [project.entry-points."mirage_bench.detectors"]
    my-detector = "my_package.detector:MyDetector"

and ships a recipe card that names ``detector: my-detector`` (pass its folder with ``--recipes DIR``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, TypeVar

from mirage_bench.registry import Registry

if TYPE_CHECKING:
    from mirage_bench.detectors.base import Detector

DETECTORS: Registry[type["Detector"]] = Registry("detector", entry_point_group="mirage_bench.detectors")

D = TypeVar("D")


def register_detector(name: str) -> Callable[[D], D]:
    """Class decorator: ``@register_detector("tinycnn")``."""
    return DETECTORS.register(name)  # type: ignore[return-value]


# Built-in implementations: each is registered here and only here, and imported when first asked for.
DETECTORS.register_lazy("tinycnn", "mirage_bench.detectors.tinycnn:TinyCNN")
DETECTORS.register_lazy("mirage", "mirage_bench.detectors.mirage:MiraGe")
DETECTORS.register_lazy("coop", "mirage_bench.detectors.coop:CoOp")
DETECTORS.register_lazy("cnnspot", "mirage_bench.detectors.cnnspot:CNNSpot")
DETECTORS.register_lazy("npr", "mirage_bench.detectors.npr:NPR")
DETECTORS.register_lazy("univfd", "mirage_bench.detectors.univfd:UnivFD")
DETECTORS.register_lazy("rine", "mirage_bench.detectors.rine:RINE")
DETECTORS.register_lazy("clipbased", "mirage_bench.detectors.clipbased:ClipBased")
DETECTORS.register_lazy("freqnet", "mirage_bench.detectors.freqnet:FreqNet")
DETECTORS.register_lazy("c2pclip", "mirage_bench.detectors.c2pclip:C2PCLIP")
DETECTORS.register_lazy("aide", "mirage_bench.detectors.aide:AIDE")
DETECTORS.register_lazy("fatformer", "mirage_bench.detectors.fatformer:FatFormer")
