"""Benchmark data read as distributed: layouts, manifests, strict decoding, protocol subsets.

- :func:`build_manifest` scans a root in one of the registered layouts (``layouts.LAYOUTS``), decodes
  every image fully and returns (manifest, exclusions).
- :func:`protocol_subsets` turns a manifest into a protocol card's train/validation/test subsets.
- :func:`images.open_rgb` is the one way an image file becomes RGB pixels.
"""

from mirage_bench.data.images import MAX_PIXELS, open_rgb
from mirage_bench.data.manifest import MANIFEST_COLUMNS, build_manifest, read_manifest, write_manifest
from mirage_bench.data.subsets import ProtocolData, check_counts, protocol_subsets

__all__ = [
    "MANIFEST_COLUMNS", "MAX_PIXELS", "ProtocolData", "build_manifest", "check_counts", "open_rgb",
    "protocol_subsets", "read_manifest", "write_manifest",
]
