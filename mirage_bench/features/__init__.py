"""The frozen-feature cache: features of a frozen encoder computed once and reused by every later run.

- :mod:`.keys`: what identifies a feature (backbone identity, image bytes, degradation, input spec).
- :mod:`.cache`: :class:`FeatureCache`, an on-disk fp16 store with a byte cap (oldest shards evicted).
- :mod:`.encode`: :func:`encode_with_cache`, a detector's ``encode`` behind the cache.
"""

from mirage_bench.features.cache import DEFAULT_CAP_BYTES, FeatureCache
from mirage_bench.features.encode import encode_with_cache, feature_keys
from mirage_bench.features.keys import FeatureKey, backbone_key, input_spec_key

__all__ = [
    "DEFAULT_CAP_BYTES",
    "FeatureCache",
    "FeatureKey",
    "backbone_key",
    "encode_with_cache",
    "feature_keys",
    "input_spec_key",
]
