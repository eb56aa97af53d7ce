"""The library's own error classes.

The CLI catches :class:`MirageBenchError` once, prints its message and exits non-zero; anything else is a
bug and keeps its traceback. Messages say what failed, the value received, what is allowed and what to do.
"""

from __future__ import annotations


class MirageBenchError(Exception):
    """Base class of every error the library raises on purpose."""


class RegistryError(MirageBenchError):
    """A registry was asked for a name it does not hold, or to hold a name twice."""


class ConfigError(MirageBenchError):
    """A recipe card, protocol card or override is not valid."""


class DataError(MirageBenchError):
    """A dataset root, layout, manifest or image cannot be used as asked."""


class CheckpointError(MirageBenchError):
    """A checkpoint is missing, corrupt or does not match the detector it is loaded into."""


class WeightsError(MirageBenchError):
    """Pretrained weights were asked for and cannot be loaded."""


class ContractError(MirageBenchError):
    """A detector breaks the detector contract (see ``mirage_bench.detectors.base``)."""
