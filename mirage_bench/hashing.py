"""Content hashes that name things across the package: canonical JSON digests and a manifest's identity hash.

Light on purpose (no torch): reports, submissions and the engine's cells all name data with them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pandas as pd

#: The columns that make a manifest what it is: which images, their bytes, labels and generators.
_IDENTITY_COLUMNS = ["image_id", "sha256", "label", "generator"]


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no spaces: equal data, equal text."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def digest(data: Any) -> str:
    """sha256 of ``data``'s canonical JSON."""
    return hashlib.sha256(canonical_json(data).encode()).hexdigest()


def frame_hash(manifest: pd.DataFrame) -> str:
    """Hash of a manifest's identity columns, independent of row order."""
    rows = manifest[_IDENTITY_COLUMNS].sort_values("image_id").astype(str)
    lines = rows[_IDENTITY_COLUMNS[0]]
    for column in _IDENTITY_COLUMNS[1:]:
        lines = lines + "\t" + rows[column]
    # one "id<TAB>sha256<TAB>label<TAB>generator\n" line per row, hashed as one stream (columns joined in C, not per row)
    return hashlib.sha256(("\n".join(lines.tolist()) + "\n" * bool(len(lines))).encode()).hexdigest()
