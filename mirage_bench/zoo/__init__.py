"""Published checkpoints: the authors' released weights, described by eval-only cards, fetched and verified.

A published card (``detectors/published/*.yaml``, :mod:`mirage_bench.zoo.card`) names the recipe a released
file loads into, where the file is hosted, its sha256, its licence and the map from its key names to ours.
:mod:`mirage_bench.zoo.fetch` puts the file in the standard caches (verified before any load) and
:mod:`mirage_bench.zoo.load` loads it strictly into our detector.
"""
