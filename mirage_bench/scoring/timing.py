"""Whose time a shared pass spent: each model's own forwards, and an equal share of the rest.

Models scored in one pass share its decoding, degradations and preprocessing, so the pass's wall time is
not any one model's. The leaderboard's images/s per detector needs each model's own cost: the seconds of
its forwards (a shared encoder's split among the models it serves) plus an equal share of the work they
share. On CUDA the forwards are timed with events read once at the end, so the scoring loop never waits
for the device. Loading checkpoints is not scoring and is left out (a run loads each once, not per subset). A
pass over several test subsets charges each subset its share by image count (an image that two subsets list is
scored once and counted in both).
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch

from mirage_bench.scoring.trunks import Trunk


class TrunkClock:
    """Seconds spent in each trunk's forwards on ``device``, and each model's share of them."""

    def __init__(self, trunks: Sequence[Trunk], device: str | torch.device) -> None:
        self.served = [[k for k, _ in trunk.heads] for trunk in trunks]
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.wall = [0.0] * len(trunks)
        self.events: list[list[tuple[torch.cuda.Event, torch.cuda.Event]]] = [[] for _ in trunks]

    @contextmanager
    def timing(self, trunk: int) -> Iterator[None]:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            stream = torch.cuda.current_stream(self.device)  # the device's stream, whichever device is current
            start.record(stream)
            yield
            end.record(stream)
            self.events[trunk].append((start, end))
        else:
            started = time.perf_counter()
            yield
            self.wall[trunk] += time.perf_counter() - started

    def seconds(self) -> list[float]:
        """Per trunk; on CUDA this waits for the recorded work (call it once the scores are on the host)."""
        if not self.cuda:
            return list(self.wall)
        torch.cuda.synchronize(self.device)
        return [sum(start.elapsed_time(end) for start, end in pairs) / 1e3 for pairs in self.events]

    def model_seconds(self, models: int) -> list[float]:
        """Each of the ``models`` models' forward seconds (see :func:`model_seconds`)."""
        return model_seconds(self.seconds(), self.served, models)


def model_seconds(trunk_seconds: Sequence[float], trunk_models: Sequence[Sequence[int]], models: int) -> list[float]:
    """Each model's forward seconds: its trunk's, split equally among the models the trunk serves."""
    out = [0.0] * models
    for seconds, served in zip(trunk_seconds, trunk_models):
        for k in served:
            out[k] += seconds / len(served)
    return out


def cell_seconds(pass_seconds: float, forward_seconds: Sequence[float], degradations: int) -> list[float]:
    """Seconds per evaluation cell of each model of a pass: its forwards plus an equal share of the pass's
    other work (never negative: device timers and the host clock may disagree by a little), over its cells."""
    shared = max(0.0, pass_seconds - sum(forward_seconds)) / max(1, len(forward_seconds))
    return [(shared + own) / max(1, degradations) for own in forward_seconds]
