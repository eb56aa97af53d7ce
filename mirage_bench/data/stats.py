"""Per generator and label: counts, formats and sizes, with warnings where reals and fakes differ.

A detector can score well by separating JPEG from PNG, or 256 px from 512 px, without looking at
generation traces (GenImage's reals are JPEG, its fakes PNG). These warnings say where that shortcut
exists in the data, so that a JPEG- or resize-degraded evaluation can be planned.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mirage_bench.data.images import conversion

_LABELS = {0: "real", 1: "fake"}
#: A format is "the" format of a group when at least this share of its images has it.
DOMINANT_SHARE = 0.9


@dataclass
class DataStats:
    table: pd.DataFrame  # one row per (generator, label)
    warnings: list[str]


def format_mix(formats: pd.Series) -> str:
    """``"JPEG 75%, PNG 25%"``, most common first (ties by name)."""
    shares = formats.value_counts(normalize=True)
    shares = shares.sort_index().sort_values(ascending=False, kind="stable")
    return ", ".join(f"{fmt} {share:.0%}" for fmt, share in shares.items())


def data_stats(manifest: pd.DataFrame) -> DataStats:
    """Counts, formats and size distributions per generator and label, plus shortcut warnings."""
    rows = []
    for (generator, label), group in manifest.groupby(["generator", "label"], sort=True):
        rows.append({
            "generator": generator, "label": _LABELS[int(label)], "images": len(group),
            "formats": format_mix(group["format"]),
            "width": _spread(group["width"]), "height": _spread(group["height"]),
            "median_kb": round(float(group["bytes"].median()) / 1024, 1),
        })
    table = pd.DataFrame(rows, columns=["generator", "label", "images", "formats", "width", "height", "median_kb"])
    warnings = []
    for generator, group in manifest.groupby("generator", sort=True):
        warnings += _compare(f"generator {generator!r}", group)
    if manifest["generator"].nunique() > 1:
        warnings += _compare("all generators pooled", manifest)
    return DataStats(table, warnings)


def conversions(manifest: pd.DataFrame) -> dict[str, int]:
    """Images that decoding converted to 8-bit RGB, counted by conversion (CMYK, palette, 16-bit grey, ...)."""
    counts: dict[str, int] = {}
    for (mode, fmt), count in manifest.groupby(["mode", "format"], sort=True).size().items():
        kind = conversion(str(mode), str(fmt))
        if kind is not None:
            counts[kind] = counts.get(kind, 0) + int(count)
    return dict(sorted(counts.items()))


def _spread(values: pd.Series) -> str:
    """``"min / median / max"`` of a size column."""
    return f"{int(values.min())} / {int(values.median())} / {int(values.max())}"


def _compare(what: str, group: pd.DataFrame) -> list[str]:
    reals, fakes = group[group["label"] == 0], group[group["label"] == 1]
    if reals.empty or fakes.empty:
        return []
    out = []
    real_fmt, fake_fmt = _dominant(reals["format"]), _dominant(fakes["format"])
    if real_fmt != fake_fmt:
        out.append(
            f"{what}: reals are {format_mix(reals['format'])} but fakes are {format_mix(fakes['format'])}; "
            "a detector can separate them by file format alone. Evaluate with JPEG degradation as well."
        )
    real_size = (int(reals["width"].median()), int(reals["height"].median()))
    fake_size = (int(fakes["width"].median()), int(fakes["height"].median()))
    if real_size != fake_size:
        out.append(
            f"{what}: median size of reals is {real_size[0]}x{real_size[1]} but of fakes {fake_size[0]}x{fake_size[1]}; "
            "a detector can separate them by size alone. Evaluate with resizing as well."
        )
    return out


def _dominant(formats: pd.Series) -> str:
    shares = formats.value_counts(normalize=True)
    top = shares.sort_index().idxmax()
    return str(top) if shares[top] >= DOMINANT_SHARE else "mixed"
