"""Named lists of degradations that reproduce the robustness tables of the papers.

Each preset holds the exact specs of its paper, in the paper's column order. The clean image (``none``)
is not part of a preset: the engine evaluates it anyway; ask for it with ``expand(["none", "genimage"])``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from mirage_bench.degradations.base import DEGRADATIONS, Degradation, parse
from mirage_bench.errors import RegistryError
from mirage_bench.registry import Registry


@dataclass(frozen=True)
class Preset:
    """A paper's degradation grid: its specs (canonical), where they come from, and how to read them."""

    name: str
    specs: tuple[str, ...]
    citation: str
    notes: str = ""

    def degradations(self) -> list[Degradation]:
        return [parse(spec) for spec in self.specs]


PRESETS: Registry[Preset] = Registry("degradation preset")


def _preset(name: str, specs: list[str], citation: str, notes: str = "") -> None:
    PRESETS.register(name, Preset(name, tuple(specs), citation, notes))


_preset(
    "genimage",
    ["downscale(size=112,interp=bilinear)", "downscale(size=64,interp=bilinear)",
     "jpeg(q=65)", "jpeg(q=30)", "blur(s=3)", "blur(s=5)"],
    "Zhu et al., GenImage, NeurIPS 2023 D&B, Table 5 (degraded image classification)",
    "Downscale to 112 / 64 px = shorter side to 112 / 64, aspect kept, PIL bilinear with antialiasing "
    "(torchvision Resize(N) on a PIL image); GenImage's fakes are square, so N x N for them. "
    "Table 5 tests the SD v1.4 val set only; the same grid on all 8 subsets is an extended protocol.",
)
_preset(
    "ufd-jpeg",
    [f"jpeg(q={q})" for q in range(100, 29, -10)],
    "Ojha et al., Towards Universal Fake Image Detectors (UnivFD), CVPR 2023, robustness figure",
    "The paper then centre-crops 224 px: that crop is the detector's preprocessing, not part of the preset.",
)
_preset(
    "ufd-blur",
    [f"blur(s={s})" for s in range(0, 5)],
    "Ojha et al., Towards Universal Fake Image Detectors (UnivFD), CVPR 2023, robustness figure",
    "blur(s=0) is the paper's clean column: it leaves the image unchanged.",
)
_preset(
    "aigcdetect",
    ["jpeg(q=95)", "blur(s=1)", "downscale(f=0.5,interp=bilinear)"],
    "Zhong et al., PatchCraft / AIGCDetectBenchmark (2023), robustness settings",
    "x0.5 halves both sides (int(w * 0.5)), PIL bilinear; at native resolution, before model preprocessing.",
)
_preset(
    "sidbench",
    ["jpeg(q=95)", "jpeg(q=90)", "jpeg(q=50)", "jpeg(q=30)", "blur(s=2)", "blur(s=4)",
     "chain(blur(s=2),jpeg(q=50))"],
    "Schinas & Papadopoulos, SIDBench, ACM MAD 2024",
    "The combined setting blurs before the JPEG round trip.",
)


def expand(names: list[str]) -> list[Degradation]:
    """Preset names and single specs -> degradations, in order, each once (first occurrence kept)."""
    if isinstance(names, str):
        raise TypeError(f"expand takes a list of names or specs, got the string {names!r}; wrap it: [{names!r}]")
    out: dict[str, Degradation] = {}
    for name in names:
        for degradation in _expand_one(name):
            out.setdefault(degradation.spec, degradation)
    return list(out.values())


def _expand_one(name: str) -> list[Degradation]:
    if name in PRESETS:
        return PRESETS.get(name).degradations()
    try:
        return [parse(name)]
    except RegistryError:
        if "(" in name:
            raise
        # A bare word that is neither a preset nor a kind: suggest from both lists.
        known = PRESETS.names() + DEGRADATIONS.names()
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise RegistryError(
            f"unknown degradation preset or spec {name!r}.{hint} Presets: {', '.join(PRESETS.names())}; "
            f"single degradations are specs of {', '.join(DEGRADATIONS.names())}, e.g. jpeg(q=65)."
        ) from None
