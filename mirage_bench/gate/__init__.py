"""The regression gate (``mirage-bench check``): a baseline that holds on any machine and still catches regressions.

A baseline has two parts (:mod:`.baseline`). The *scored* part (:mod:`.scored`) re-scores committed checkpoints on
the baseline's test images and compares every logit to float rounding: decoding, degradations, preprocessing, models
and metrics are deterministic across CPUs, so any change there fails. The *trained* part (:mod:`.trained`) compares a
fresh run's metrics, which move with the CPU kernels that training runs on, against a tolerance taken from the spread
measured over seeds and kernel settings when the baseline was written.
"""

from mirage_bench.gate.check import GateResult, check_gate, update_baseline

__all__ = ["GateResult", "check_gate", "update_baseline"]
