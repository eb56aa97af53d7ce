"""mirage-bench: a benchmark harness for detectors of AI-generated images."""

__version__ = "0.1.0"
